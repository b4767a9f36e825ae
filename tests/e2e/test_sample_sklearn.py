"""End to end: the real CLI on the scikit-learn samples (bundled data sets, held-out splits)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests_support import UNTIMED_ARGS

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_models" / "sklearn"

pytestmark = pytest.mark.e2e

#: with the recipe's speed gates (only under ``-m speed``: timed) or without them and with 3 calls per
#: timed block (by default: tests_support.UNTIMED_ARGS)
TIMED = [pytest.param(False, id="accuracy"), pytest.param(True, id="speed", marks=pytest.mark.speed)]

CASES = [
    ("logreg-breast-cancer", "breast-cancer", "sklearn-fp32", 1.0),
    ("svm-wine", "wine", "sklearn-fp32", 1.0),
    ("rf-wine", "wine", "sklearn-fp32", 0.995),
    ("hgb-breast-cancer", "breast-cancer", "sklearn-fp32", 0.995),
    ("gbr-diabetes", "diabetes", "sklearn-regressor-fp32", None),
]


@pytest.fixture(scope="module")
def samples() -> Path:
    subprocess.run([sys.executable, str(ROOT / "sample_models" / "build_sklearn.py")], check=True, timeout=600)
    return SAMPLES


@pytest.mark.parametrize("timed", TIMED)
@pytest.mark.parametrize("model,dataset,recipe,min_agreement", CASES)
def test_sklearn_sample_is_approved(samples, tmp_path, model, dataset, recipe, min_agreement, timed):
    out = tmp_path / model
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "optkit.cli.app",
            "convert",
            str(samples / f"{model}.skops"),
            "--recipe",
            recipe,
            "--data",
            str(samples / f"{dataset}-test.npz"),
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
    assert manifest["source"]["framework"] == "sklearn" and manifest["data"]["real"]
    metrics = manifest["accuracy"]["metrics"]
    if min_agreement is not None:
        assert metrics["label_agreement"] >= min_agreement
        assert len(manifest["accuracy"]["disagreements"]) == round(
            (1 - metrics["label_agreement"]) * manifest["data"]["samples"]
        )
    else:
        assert metrics["max_rel_error"] <= 1e-4
    speed = {g["metric"]: g["status"] for g in manifest["gates"]}.get("speedup")
    assert speed == ("passed" if timed else None)
