"""End to end: the real CLI on the Keras digits CNN (cnn-int8, static QDQ with its calibration split)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests_support import UNTIMED_ARGS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_models" / "digits-keras"

pytestmark = pytest.mark.e2e

#: with the recipe's speed gates (only under ``-m speed``: timed) or without them and with 3 calls per
#: timed block (by default: tests_support.UNTIMED_ARGS)
TIMED = [pytest.param(False, id="accuracy"), pytest.param(True, id="speed", marks=pytest.mark.speed)]


@pytest.fixture(scope="module")
def sample() -> Path:
    subprocess.run([sys.executable, str(ROOT / "sample_models" / "build_digits_keras.py")], check=True, timeout=900)
    return SAMPLE


@pytest.mark.parametrize("timed", TIMED)
@pytest.mark.parametrize("source", ["model.keras", "savedmodel"])
def test_keras_cnn_int8_approved_and_faster_at_1_and_32(sample, tmp_path, source, timed):
    out = tmp_path / "cnn"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "optkit.cli.app",
            "convert",
            str(sample / source),
            "--recipe",
            "cnn-int8",
            "--data",
            str(sample / "test.npz"),
            "--calibration-data",
            str(sample / "calibration.npz"),
            "-o",
            str(out),
            *([] if timed else UNTIMED_ARGS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["framework"] == "tensorflow"
    gates = {g["name"]: g for g in manifest["gates"]}
    assert gates["label_agreement >= 0.99"]["status"] == "passed"
    speed = {gates[n]["status"] for n in gates if n.startswith("speedup")}
    assert speed == ({"passed"} if timed else set())
    assert manifest["accuracy"]["metrics"]["accuracy_source"] > 0.9  # a trained model on real digits
    assert not any("validation data itself" in w for w in manifest["warnings"])
