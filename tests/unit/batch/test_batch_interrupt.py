"""Ctrl-C during a plan: the real ``optkit batch`` CLI gets SIGINT after its first item finished,
exits 130, writes the summary with the unfinished items ``cancelled``, and leaves only complete
artifacts; a re-run then makes exactly the items still missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import write_plan
from optkit.artifact.verify import verify_artifact

ROOT = Path(__file__).resolve().parents[3]


def _interrupt_after_first_item(plan_file: Path, *extra: str) -> tuple[int, str]:
    """Run ``optkit batch`` and send SIGINT once its first item is reported; (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "optkit.cli.app", "batch", str(plan_file), *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 600
    for line in proc.stderr:  # the first item's line: "✓ a: approved (...)"
        seen.append(line)
        if line.startswith(("✓ a", "✗ a")) or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=300)
    return proc.returncode, "".join(seen) + (rest or "")


def test_ctrl_c_exits_130_cancels_the_rest_and_a_rerun_completes(tiny_items, tmp_path):
    """With ``--jobs 2`` (worker processes to stop; ``--jobs 1`` runs items in this process, where
    the pipeline's own interrupt handling applies, tested with ``optkit convert``)."""
    names = ["a", "b", "c", "d"]
    plan_file = write_plan(tmp_path, tiny_items, names)
    code, err = _interrupt_after_first_item(plan_file, "--jobs", "2")
    assert code == 130, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    statuses = {item["name"]: item["status"] for item in summary["items"]}
    assert statuses["a"] == "approved", err
    assert statuses["d"] == "cancelled", statuses  # a and b started first; d had not started
    made = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert set(made) <= set(names), made  # no staging folder left behind
    for name in made:
        assert verify_artifact(tmp_path / "out" / name).ok, name  # every folder is a whole artifact
    again = subprocess.run(
        [sys.executable, "-m", "optkit.cli.app", "batch", str(plan_file), "--jobs", "1", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        cwd=ROOT,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    rerun = {item["name"]: item["status"] for item in json.loads(again.stdout)["items"]}
    assert rerun["a"] == "skipped"
    assert {n for n, s in rerun.items() if s == "approved"} == {n for n in names if n not in made}
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == names
