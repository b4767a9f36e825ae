"""Quantize-dequantize in numpy, following ONNX Runtime's int8 formulas (onnxruntime
``quantization/quant_utils.py``: ``compute_scale_zp``, ``get_qmin_qmax_for_qType``):

* QInt8 weights are symmetric: ``scale = max|w| / 127`` (``/ 64`` with ``reduce_range``), zero point 0;
* QUInt8 weights and dynamic activations (``DynamicQuantizeLinear``) are asymmetric over
  ``[min(x, 0), max(x, 0)]`` onto 0..255 (0..127 with ``reduce_range`` for weights);
* per-channel weights get one scale per output channel (``axis``), per-tensor one scale in all.
"""

from __future__ import annotations

import numpy as np


def fake_quant_weight(
    w: np.ndarray, weight_type: str, per_channel: bool, reduce_range: bool, axis: int = -1
) -> np.ndarray:
    """``dequantize(quantize(w))`` as float64, same shape as ``w``.

    Args:
        w: a float weight tensor.
        weight_type: ``"qint8"`` (symmetric) or ``"quint8"`` (asymmetric).
        per_channel: one scale per slice along ``axis`` (the output channels).
        reduce_range: 7-bit ranges (ORT's ``reduce_range``).
    """
    w = w.astype(np.float64)
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis % w.ndim) if per_channel and w.ndim > 1 else None
    lo = np.minimum(w.min(axis=reduce_axes, keepdims=True), 0.0)
    hi = np.maximum(w.max(axis=reduce_axes, keepdims=True), 0.0)
    if weight_type == "qint8":
        qmax = 64.0 if reduce_range else 127.0
        scale = np.maximum(np.maximum(-lo, hi) / qmax, 1e-12)
        return np.clip(np.round(w / scale), -qmax, qmax) * scale
    qmax = 127.0 if reduce_range else 255.0
    return _asymmetric(w, lo, hi, qmax)


def fake_quant_activation(x: np.ndarray) -> np.ndarray:
    """``DynamicQuantizeLinear`` then dequantize: one uint8 scale for the whole tensor."""
    x = x.astype(np.float64)
    return _asymmetric(x, min(float(x.min()), 0.0), max(float(x.max()), 0.0), 255.0)


def _asymmetric(x: np.ndarray, lo, hi, qmax: float) -> np.ndarray:
    scale = np.maximum((hi - lo) / qmax, 1e-12)
    zero = np.clip(np.round(-lo / scale), 0, qmax)
    return (np.clip(np.round(x / scale) + zero, 0, qmax) - zero) * scale
