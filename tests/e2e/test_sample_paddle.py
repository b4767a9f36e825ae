"""End to end: the real CLI on the PaddlePaddle digits CNN, PIR (.json) and legacy (.pdmodel) programs.

Paddle runs only in child processes here: importing TensorFlow (used by other tests in this
process) and then Paddle in one process crashes.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests_support import UNTIMED_ARGS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_models" / "digits-paddle"

pytestmark = pytest.mark.e2e

#: with the recipe's speed gates (only under ``-m speed``: timed) or without them and with 3 calls per
#: timed block (by default: tests_support.UNTIMED_ARGS)
TIMED = [pytest.param(False, id="accuracy"), pytest.param(True, id="speed", marks=pytest.mark.speed)]


@pytest.fixture(scope="module")
def sample() -> Path:
    if importlib.util.find_spec("paddle2onnx") is None:  # find_spec does not import paddle into this process
        pytest.skip("paddle2onnx is not installed")
    subprocess.run(
        [sys.executable, str(ROOT / "sample_models" / "build_digits_paddle.py")],
        check=True,
        timeout=900,
        stdout=subprocess.DEVNULL,
    )
    return SAMPLE


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "optkit.cli.app", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("timed", TIMED)
@pytest.mark.parametrize("program", ["model.json", "legacy/model.pdmodel"])
def test_paddle_cnn_int8_approved(sample, tmp_path, program, timed):
    out = tmp_path / "cnn"
    done = cli(
        "convert",
        str(sample / program),
        "--recipe",
        "cnn-int8",
        "--data",
        str(sample / "test.npz"),
        "--calibration-data",
        str(sample / "calibration.npz"),
        "-o",
        str(out),
        "--json",
        *([] if timed else UNTIMED_ARGS),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    payload = json.loads(done.stdout)  # native Paddle logging must not leak into the JSON on stdout
    assert payload["approved"] and payload["source"]["framework"] == "paddle"
    assert payload["source"]["kind"] == ("paddle-pir" if program.endswith(".json") else "paddle-pdmodel")
    gates = {g["name"]: g["status"] for g in payload["gates"]}
    assert set(gates.values()) == {"passed"} and ("speedup b32 cpu >= 1" in gates) == timed
    assert payload["accuracy"]["metrics"]["accuracy_source"] > 0.9


def test_missing_params_is_clear_error(sample, tmp_path):
    shutil.copy(sample / "legacy" / "model.pdmodel", tmp_path / "model.pdmodel")
    done = cli("convert", str(tmp_path / "model.pdmodel"), "-o", str(tmp_path / "o"))
    assert done.returncode == 2 and "model.pdiparams" in done.stderr and "Traceback" not in done.stderr


def test_corrupt_program_is_clear_error(sample, tmp_path):
    (tmp_path / "model.json").write_text((sample / "model.json").read_text()[:300])
    shutil.copy(sample / "model.pdiparams", tmp_path / "model.pdiparams")
    done = cli("convert", str(tmp_path / "model.json"), "-o", str(tmp_path / "o"))
    assert done.returncode == 2 and "Paddle program" in done.stderr and "truncated or corrupt" in done.stderr
    assert not (tmp_path / "o").exists()
