"""Ctrl-C, SIGTERM or SIGHUP during a run: exit 130 / 143 / 129, temporary folders removed, no output or
staging folder left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

# A benchmark this long never ends on its own within the test: the run is surely still inside the
# pipeline when SIGINT arrives, whichever step's start line we wait for (no sleeps, no timing).
ENDLESS = [
    "--batch-sizes",
    "1",
    "--sequence-lengths",
    "16",
    "--set",
    "benchmark.warmup=1",
    "--set",
    "benchmark.iterations=10000000",
    "--set",
    "benchmark.gates=[]",
]


def _stop_mid_run(tiny, tmp_path, step, signum):
    """Start a run, send ``signum`` when ``step`` starts; return (exit code, stderr, tmpdir, out)."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "runs" / "art"
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "optkit.cli.app",
            "convert",
            str(tiny["pt"]),
            "--recipe",
            "ner-int8",
            "--data",
            str(tiny["conll"]),
            "-o",
            str(out),
            *ENDLESS,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith(f"… {step}"):
                proc.send_signal(signum)
                break
        try:
            _, rest = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, rest = proc.communicate()
            pytest.fail(f"the run went on after signal {signum}:\n" + "".join(seen) + rest[-2000:])
        code = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(line.startswith(f"… {step}") for line in seen), "".join(seen)
    return code, "".join(seen) + rest, rest, tmpdir, out


@pytest.mark.parametrize("step", ["export", "quantize-dynamic", "benchmark speed"])
def test_ctrl_c_exits_130_and_leaves_nothing(tiny, tmp_path, step):
    code, everything, rest, tmpdir, out = _stop_mid_run(tiny, tmp_path, step, signal.SIGINT)
    assert code == 130, everything
    assert rest.strip().splitlines()[-1] == "interrupted: nothing was written (temporary files removed)"
    assert "Traceback" not in rest
    assert [p.name for p in tmpdir.iterdir() if p.name.startswith("optkit-")] == []
    assert not out.parent.exists() or list(out.parent.iterdir()) == [], "no output and no staging folder"


@pytest.mark.parametrize(
    "signum, step",
    [(signal.SIGTERM, "export"), (signal.SIGTERM, "benchmark speed"), (signal.SIGHUP, "benchmark speed")],
)
def test_sigterm_and_sighup_are_handled_like_ctrl_c(tiny, tmp_path, signum, step):
    """CI runners, `timeout` and `docker stop` send SIGTERM; a closed terminal sends SIGHUP."""
    code, everything, rest, tmpdir, out = _stop_mid_run(tiny, tmp_path, step, signum)
    assert code == 128 + signum, everything
    name = signal.Signals(signum).name
    assert rest.strip().splitlines()[-1] == f"interrupted by {name}: nothing was written (temporary files removed)"
    assert "Traceback" not in rest
    assert [p.name for p in tmpdir.iterdir() if p.name.startswith("optkit-")] == []
    assert not out.parent.exists() or list(out.parent.iterdir()) == [], "no output and no staging folder"


def test_a_swallowed_ctrl_c_is_raised_again_at_the_next_check():
    """Native code may consume the KeyboardInterrupt; the recorded request still stops the run."""
    from optkit import interrupts

    previous = signal.getsignal(signal.SIGINT)
    try:
        interrupts.install()
        interrupts.check()  # nothing pressed yet
        with pytest.raises(KeyboardInterrupt):
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        for _ in range(2):  # as if a library had caught it: every later check raises again
            with pytest.raises(KeyboardInterrupt):
                interrupts.check()
        interrupts.install()
        interrupts.check()  # a new run starts clean
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_swallowed_sigterm_is_raised_again_with_its_signal():
    from optkit import interrupts

    previous = {s: signal.getsignal(s) for s in interrupts.HANDLED}
    try:
        interrupts.install()
        with pytest.raises(interrupts.Interrupted) as first:
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        with pytest.raises(KeyboardInterrupt) as again:  # every clean-up that handles Ctrl-C handles it
            interrupts.check()
        assert first.value.signum == again.value.signum == signal.SIGTERM
        assert interrupts.exit_code(again.value) == 143 and interrupts.exit_code(KeyboardInterrupt()) == 130
    finally:
        interrupts.install()  # clear the recorded request: later tests in this process start clean
        for signum, handler in previous.items():
            signal.signal(signum, handler)
