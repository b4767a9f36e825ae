"""scikit-learn's bundled ``load_digits`` (8×8 grey images, 10 classes), split for the CNN samples."""

from __future__ import annotations


def digits_splits(layout: str, seed: int = 0):
    """(x_train, x_test, y_train, y_test), stratified 75/25 with ``random_state=seed``.

    Args:
        layout: ``"nhwc"`` (N×8×8×1, Keras) or ``"nchw"`` (N×1×8×8, Paddle); float32 in [0, 1].
    """
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    shape = (-1, 8, 8, 1) if layout == "nhwc" else (-1, 1, 8, 8)
    x = (x / 16.0).astype(np.float32).reshape(shape)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
