"""Hostile models run with the scan skipped (``--trust-model-code``): the confinement alone must keep
them from writing files. Each builds its model in a child process (TensorFlow and Paddle must not
share one) and runs the real CLI."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hostile_models import build_in_child
from optkit.sandbox.landlock import abi_version

pytestmark = pytest.mark.skipif(abi_version() == 0, reason="this kernel has no Landlock")


def _convert(model: Path, recipe: str, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    out = tmp_path / "out"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "optkit.cli.app",
            "convert",
            str(model),
            "--recipe",
            recipe,
            "-o",
            str(out),
            "--set",
            "benchmark.iterations=3",
            "--set",
            "benchmark.warmup=1",
            *flags,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        timeout=600,
    )


def _needs(module: str) -> None:
    """Skip without importing ``module`` here (TensorFlow and Paddle must not share this process)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _data(tmp_path: Path, features: int) -> str:
    path = tmp_path / "x.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(8, features)).astype(np.float32))
    return str(path)


def _assert_stopped(done: subprocess.CompletedProcess, written: Path, tmp_path: Path) -> None:
    assert not written.exists(), "the model wrote its file"
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "sandbox stopped the source model" in last or "unsafe model" in last, last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("optkit-")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "no staging folder left"


def test_savedmodel_writing_a_file_is_refused_by_the_scan(tmp_path):
    _needs("tensorflow")
    model = build_in_child("savedmodel_writing_file", tmp_path)
    done = _convert(model, "fp32", tmp_path, "--data", _data(tmp_path, 4))
    _assert_stopped(done, tmp_path / "written_by_model.txt", tmp_path)
    assert "WriteFile" in done.stderr


def test_savedmodel_writing_a_file_is_stopped_by_the_sandbox_when_the_scan_is_skipped(tmp_path):
    _needs("tensorflow")
    model = build_in_child("savedmodel_writing_file", tmp_path)
    done = _convert(model, "fp32", tmp_path, "--trust-model-code", "--data", _data(tmp_path, 4))
    _assert_stopped(done, tmp_path / "written_by_model.txt", tmp_path)


def test_paddle_program_with_a_save_op_is_stopped_by_the_sandbox_when_the_scan_is_skipped(tmp_path):
    _needs("paddle")
    model = build_in_child("paddle_pdmodel_with_save", tmp_path)
    done = _convert(model, "fp32", tmp_path, "--trust-model-code", "--data", _data(tmp_path, 3))
    _assert_stopped(done, tmp_path / "written_by_model.bin", tmp_path)
