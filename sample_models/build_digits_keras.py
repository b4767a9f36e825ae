#!/usr/bin/env python
"""Build the Keras CNN sample: a small convolutional net trained on scikit-learn's bundled
``load_digits`` images (8×8 grey levels, 10 classes; no download).

Writes ``sample_models/digits-keras/`` (git-ignored): ``model.keras`` (Keras 3 file),
``savedmodel/`` (``model.export``), ``test.npz`` (held-out 25 %: ``X`` float32 N×8×8×1 in [0, 1], gold
``y``), ``calibration.npz`` (200 training images, for static quantization), ``build-stamp.json``.
Seeded (split random_state=0, keras.utils.set_random_seed(0)); cached by this script's sha256;
about 20 s on 2 cores.

Usage: ``python sample_models/build_digits_keras.py [--force]``
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from build_cache import fresh_tmp, publish, script_sha256, up_to_date
from digits_data import digits_splits

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SCRIPT = Path(__file__).resolve()
OUT = SCRIPT.parent / "digits-keras"
SEED = 0


def build_model():
    """Conv(16) → Conv(32) → MaxPool → Dense(64) → Dense(10, softmax)."""
    import keras

    inputs = keras.Input((8, 8, 1), name="pixels")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the Keras digits CNN sample.")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if not args.force and up_to_date(OUT, SCRIPT):
        print(f"digits-keras: up to date ({OUT})")
        return
    import keras
    import numpy as np
    import tensorflow as tf

    start = time.perf_counter()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    keras.utils.set_random_seed(SEED)
    x_train, x_test, y_train, y_test = digits_splits("nhwc", SEED)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0, shuffle=True)
    accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
    tmp = fresh_tmp(OUT)
    model.save(tmp / "model.keras")
    model.export(str(tmp / "savedmodel"), verbose=False)
    np.savez(tmp / "test.npz", X=x_test, y=y_test)
    np.savez(tmp / "calibration.npz", X=x_train[:200])
    info = {
        "script_sha256": script_sha256(SCRIPT),
        "seed": SEED,
        "test_accuracy": round(accuracy, 4),
        "splits": {"train": len(x_train), "test": len(x_test)},
        "seconds": round(time.perf_counter() - start, 1),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    publish(tmp, OUT, info)
    print(f"digits-keras: test accuracy {accuracy:.4f}, built in {info['seconds']} s ({OUT})")


if __name__ == "__main__":
    main()
