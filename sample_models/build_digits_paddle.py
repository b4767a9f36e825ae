#!/usr/bin/env python
"""Build the PaddlePaddle CNN sample: a small convolutional net trained with Paddle on
scikit-learn's bundled ``load_digits`` images (8×8, 10 classes; no download).

Writes ``sample_models/digits-paddle/`` (git-ignored): ``model.json`` + ``model.pdiparams`` (PIR
program from ``paddle.jit.save``), ``legacy/model.pdmodel`` + ``.pdiparams`` (the older program
format, saved with PIR off), ``test.npz`` (held-out 25 %: ``X`` float32 N×1×8×8, gold ``y``),
``calibration.npz`` (200 training images), ``build-stamp.json``. Seeded; cached by this script's
sha256; about 20 s on 2 cores.

Usage: ``python sample_models/build_digits_paddle.py [--force]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from build_cache import fresh_tmp, publish, script_sha256, up_to_date
from digits_data import digits_splits

SCRIPT = Path(__file__).resolve()
OUT = SCRIPT.parent / "digits-paddle"
SEED = 0


def train_and_save(out: Path, legacy: bool) -> float:
    """Train the CNN (seeded, so both formats hold the same weights) and jit.save it; returns test accuracy."""
    import numpy as np
    import paddle

    paddle.seed(SEED)
    np.random.seed(SEED)
    x_train, x_test, y_train, y_test = digits_splits("nchw", SEED)

    class DigitsCNN(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = paddle.nn.Conv2D(1, 16, 3, padding=1)
            self.conv2 = paddle.nn.Conv2D(16, 32, 3, padding=1)
            self.pool = paddle.nn.MaxPool2D(2)
            self.fc1 = paddle.nn.Linear(32 * 4 * 4, 64)
            self.fc2 = paddle.nn.Linear(64, 10)

        def forward(self, pixels):
            h = self.pool(paddle.nn.functional.relu(self.conv2(paddle.nn.functional.relu(self.conv1(pixels)))))
            h = paddle.nn.functional.relu(self.fc1(paddle.flatten(h, 1)))
            return paddle.nn.functional.softmax(self.fc2(h))

    model = DigitsCNN()
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    xs, ys = paddle.to_tensor(x_train), paddle.to_tensor(y_train.astype("int64"))
    order = np.random.RandomState(SEED)
    for _ in range(30):
        perm = order.permutation(len(x_train))
        for i in range(0, len(perm), 32):
            idx = paddle.to_tensor(perm[i : i + 32])
            loss = paddle.nn.functional.cross_entropy(model(xs[idx]), ys[idx], use_softmax=False)  # probabilities in
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
    model.eval()
    accuracy = float((model(paddle.to_tensor(x_test)).numpy().argmax(1) == y_test).mean())
    spec = [paddle.static.InputSpec([None, 1, 8, 8], "float32", "pixels")]
    paddle.jit.save(model, str(out / "model"), input_spec=spec)
    if not legacy:
        np.savez(out.parent / "test.npz", X=x_test, y=y_test)
        np.savez(out.parent / "calibration.npz", X=x_train[:200])
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the Paddle digits CNN sample.")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--legacy-into", type=Path, help=argparse.SUPPRESS)  # child process: PIR off
    args = parser.parse_args()
    if args.legacy_into:
        print(train_and_save(args.legacy_into, legacy=True))
        return
    if not args.force and up_to_date(OUT, SCRIPT):
        print(f"digits-paddle: up to date ({OUT})")
        return
    start = time.perf_counter()
    tmp = fresh_tmp(OUT)
    (tmp / "pir").mkdir()
    (tmp / "legacy").mkdir()
    accuracy = train_and_save(tmp / "pir", legacy=False)
    for name in ("model.json", "model.pdiparams"):
        (tmp / "pir" / name).rename(tmp / name)
    shutil.rmtree(tmp / "pir")
    subprocess.run(
        [sys.executable, str(SCRIPT), "--legacy-into", str(tmp / "legacy")],
        check=True,
        env={**os.environ, "FLAGS_enable_pir_api": "0"},
        stdout=subprocess.DEVNULL,
    )
    import paddle

    info = {
        "script_sha256": script_sha256(SCRIPT),
        "seed": SEED,
        "test_accuracy": round(accuracy, 4),
        "formats": sorted(p.name for p in tmp.rglob("model.*")),
        "seconds": round(time.perf_counter() - start, 1),
        "versions": {"paddlepaddle": paddle.__version__},
    }
    publish(tmp, OUT, info)
    print(f"digits-paddle: test accuracy {accuracy:.4f}, built in {info['seconds']} s ({OUT})")


if __name__ == "__main__":
    main()
