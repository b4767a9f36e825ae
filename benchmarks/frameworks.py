"""Benchmark every non-PyTorch sample against its source framework, one table row per conversion.

Usage (builds the samples if needed)::

    python benchmarks/frameworks.py [--iterations 100]

Each row runs ``optkit convert ... --json`` in its own process (TensorFlow and Paddle must not share
one), on the sample's held-out split; the source framework and ONNX Runtime are timed in that same
run with 2 threads. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
S = ROOT / "sample_models"
BUILDERS = ["build_digits_keras.py", "build_digits_paddle.py", "build_sklearn.py"]
ROWS = [
    (
        "Keras CNN (.keras)",
        S / "digits-keras/model.keras",
        "cnn-int8",
        S / "digits-keras/test.npz",
        S / "digits-keras/calibration.npz",
    ),
    (
        "Keras CNN (SavedModel)",
        S / "digits-keras/savedmodel",
        "cnn-int8",
        S / "digits-keras/test.npz",
        S / "digits-keras/calibration.npz",
    ),
    (
        "Paddle CNN (PIR .json)",
        S / "digits-paddle/model.json",
        "cnn-int8",
        S / "digits-paddle/test.npz",
        S / "digits-paddle/calibration.npz",
    ),
    (
        "Paddle CNN (.pdmodel)",
        S / "digits-paddle/legacy/model.pdmodel",
        "cnn-int8",
        S / "digits-paddle/test.npz",
        S / "digits-paddle/calibration.npz",
    ),
    (
        "LogisticRegression pipeline",
        S / "sklearn/logreg-breast-cancer.skops",
        "sklearn-fp32",
        S / "sklearn/breast-cancer-test.npz",
        None,
    ),
    ("SVC pipeline", S / "sklearn/svm-wine.skops", "sklearn-fp32", S / "sklearn/wine-test.npz", None),
    ("RandomForest", S / "sklearn/rf-wine.skops", "sklearn-fp32", S / "sklearn/wine-test.npz", None),
    (
        "HistGradientBoosting",
        S / "sklearn/hgb-breast-cancer.skops",
        "sklearn-fp32",
        S / "sklearn/breast-cancer-test.npz",
        None,
    ),
    (
        "GradientBoostingRegressor",
        S / "sklearn/gbr-diabetes.skops",
        "sklearn-regressor-fp32",
        S / "sklearn/diabetes-test.npz",
        None,
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    for builder in BUILDERS:
        subprocess.run([sys.executable, str(S / builder)], check=True, stdout=subprocess.DEVNULL)
    header = [
        "model",
        "recipe",
        "samples",
        "label agreement",
        "disagreements",
        "max abs err",
        "max rel err",
        "acc source",
        "acc artifact",
        "source p50 b1 (ms)",
        "artifact p50 b1 (ms)",
        "speed-up b1",
        "source p50 b32 (ms)",
        "artifact p50 b32 (ms)",
        "speed-up b32",
        "verdict",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, model, recipe, data, calib) in enumerate(ROWS):
            cmd = [
                sys.executable,
                "-m",
                "optkit.cli.app",
                "convert",
                str(model),
                "--recipe",
                recipe,
                "--data",
                str(data),
                "-o",
                f"{tmp}/{i}",
                "--json",
                "--set",
                f"benchmark.iterations={args.iterations}",
            ]
            if calib:
                cmd += ["--calibration-data", str(calib)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            m = json.loads(done.stdout)
            metrics = m["accuracy"]["metrics"]
            shapes = {s["batch_size"]: s for s in m["speed"]["shapes"]}
            speed = [shapes[b] for b in (1, 32)]
            fmt = lambda k, f="{:.4f}", metrics=metrics: f.format(metrics[k]) if k in metrics else "—"  # noqa: E731
            row = [
                label,
                recipe,
                str(m["data"]["samples"]),
                fmt("label_agreement"),
                str(len(m["accuracy"]["disagreements"])),
                fmt("max_abs_error", "{:.1e}"),
                fmt("max_rel_error", "{:.1e}"),
                fmt("accuracy_source"),
                fmt("accuracy_artifact"),
            ]
            for s in speed:
                src, art = s["source"]["p50_ms"], s["artifact"]["p50_ms"]
                row += [f"{src:.3f}", f"{art:.3f}", f"{src / art:.1f}×"]
            row.append("approved" if m["approved"] else "rejected")
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
