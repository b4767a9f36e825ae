"""Conversions shared by the report tests: one approved ``ner-int8`` run (with its search) and one
rejected ``fp32`` run (an impossible gate), both with ``--report-dir`` and ``--summary-md``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from optkit.cli.app import app

FAST = ["--sequence-lengths", "16", "--set", "benchmark.iterations=3", "--set", "benchmark.warmup=1"]
FAST += ["--set", "benchmark.gates=[]"]


@pytest.fixture(scope="session")
def report_runs(tiny, tmp_path_factory) -> dict[str, Path]:
    """Paths: ``ok`` (artifact), ``ok_reports``, ``ok_summary``, ``bad`` (no artifact),
    ``bad_reports``, ``bad_summary``."""
    root = tmp_path_factory.mktemp("report-runs")
    paths = {
        "ok": root / "ok",
        "ok_reports": root / "ok-reports",
        "ok_summary": root / "ok.md",
        "bad": root / "bad",
        "bad_reports": root / "bad-reports" / "nested",
        "bad_summary": root / "bad.md",
    }
    runner = CliRunner()
    common = [str(tiny["pt"]), "--data", str(tiny["conll"]), *FAST]
    ok = runner.invoke(
        app,
        ["convert", *common, "--recipe", "ner-int8", "--batch-sizes", "1,2", "-o", str(paths["ok"])]
        + ["--report-dir", str(paths["ok_reports"]), "--summary-md", str(paths["ok_summary"])],
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(
        app,
        ["convert", *common, "--recipe", "fp32", "--batch-sizes", "1", "-o", str(paths["bad"])]
        + ["--set", "validation.gates=[{metric: cosine_min, min: 1.5}]"]
        + ["--report-dir", str(paths["bad_reports"]), "--summary-md", str(paths["bad_summary"])],
    )
    assert bad.exit_code == 1, bad.output
    return paths
