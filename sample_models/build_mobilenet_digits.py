#!/usr/bin/env python
"""Build the Keras MobileNetV2 sample: ``keras.applications.MobileNetV2(weights=None, alpha=0.35,
input_shape=(32, 32, 3), classes=10)`` trained for a few epochs on scikit-learn's bundled
``load_digits`` images (no download), upscaled from 8×8 to 32×32 (nearest, 4×4 blocks) and
repeated to 3 channels. A real depthwise-separable CNN for the ``cnn-int8`` search (issue 13).

Writes ``sample_models/mobilenet-digits/`` (git-ignored): ``model.keras`` (Keras 3 file),
``test.npz`` (held-out 25 %: ``X`` float32 N×32×32×3 in [0, 1], gold ``y``), ``calibration.npz``
(200 training images, a split distinct from the test images, for static quantization),
``build-stamp.json``. Seeded (split random_state=0, keras.utils.set_random_seed(0)); cached by this
script's sha256; about 2–3 min on 2 cores.

Usage: ``python sample_models/build_mobilenet_digits.py [--force]``
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
OUT = SCRIPT.parent / "mobilenet-digits"
SEED = 0
SIZE = 32
EPOCHS = 12
BATCH = 32
#: Keras' MobileNetV2 uses BatchNormalization momentum 0.999, whose moving statistics need thousands
#: of steps to settle; the ~500 steps of this build would leave them near their initial values (a
#: chance-level model at inference), so every BatchNormalization layer gets 0.9, and the statistics
#: are recomputed exactly on the training images after training (:func:`recompute_batch_norm`)
BN_MOMENTUM = 0.9


def upscale(x):
    """N×8×8×1 float32 -> N×32×32×3: each pixel a 4×4 block, the grey level in all 3 channels."""
    import numpy as np

    factor = SIZE // x.shape[1]
    big = np.repeat(np.repeat(x, factor, axis=1), factor, axis=2)
    return np.ascontiguousarray(np.repeat(big, 3, axis=3), dtype=np.float32)


def build_model():
    """MobileNetV2, width 0.35, 32×32×3 input, random initial weights, 10-way softmax, batch-norm
    momentum :data:`BN_MOMENTUM`."""
    import keras

    model = keras.applications.MobileNetV2(
        input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, classes=10, classifier_activation="softmax"
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


def recompute_batch_norm(model, x) -> None:
    """Set every BatchNormalization layer's moving mean and variance to the exact statistics of
    ``x`` (momentum 0, one training-mode pass over all of ``x`` in one batch): the inference model
    then normalises as training did, instead of with moving averages that lag the last weights."""
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.momentum = 0.0
    model(x, training=True)
    for layer in layers:
        layer.momentum = BN_MOMENTUM


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the Keras MobileNetV2 digits sample.")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if not args.force and up_to_date(OUT, SCRIPT):
        print(f"mobilenet-digits: up to date ({OUT})")
        return
    import keras
    import numpy as np
    import tensorflow as tf

    start = time.perf_counter()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    keras.utils.set_random_seed(SEED)
    x_train, x_test, y_train, y_test = digits_splits("nhwc", SEED)
    x_train, x_test = upscale(x_train), upscale(x_test)
    model = build_model()
    steps = EPOCHS * -(-len(x_train) // BATCH)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps)  # confident predictions by the last epoch
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(x_train, y_train, epochs=EPOCHS, batch_size=BATCH, verbose=0, shuffle=True)
    recompute_batch_norm(model, x_train)
    accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
    tmp = fresh_tmp(OUT)
    model.save(tmp / "model.keras")
    np.savez(tmp / "test.npz", X=x_test, y=y_test)
    np.savez(tmp / "calibration.npz", X=x_train[:200])
    info = {
        "script_sha256": script_sha256(SCRIPT),
        "seed": SEED,
        "epochs": EPOCHS,
        "batch_size": BATCH,
        "bn_momentum": BN_MOMENTUM,
        "test_accuracy": round(accuracy, 4),
        "splits": {"train": len(x_train), "test": len(x_test), "calibration": 200},
        "seconds": round(time.perf_counter() - start, 1),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    publish(tmp, OUT, info)
    print(f"mobilenet-digits: test accuracy {accuracy:.4f}, built in {info['seconds']} s ({OUT})")


if __name__ == "__main__":
    main()
