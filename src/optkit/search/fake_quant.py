"""Quantize-dequantize in numpy, following ONNX Runtime's int8 formulas and its float32 arithmetic
(onnxruntime ``quantization/quant_utils.py``: ``compute_scale_zp``, ``quantize_nparray``,
``get_qmin_qmax_for_qType``; the ``DynamicQuantizeLinear`` kernel, ``core/util/qmath.h``
``GetQuantizationParameter``):

* QInt8 weights are symmetric: ``scale = max|w| / 127`` (``/ 64`` with ``reduce_range``), zero point 0;
* QUInt8 weights are asymmetric over ``[min(w, 0), max(w, 0)]`` onto 0..255 (0..127 with
  ``reduce_range``); the scale is computed in float64 and stored as float32, as the quantizer does;
* dynamic activations (``DynamicQuantizeLinear``) are asymmetric uint8 over ``[min(x, 0), max(x, 0)]``,
  computed in float32 as the kernel does;
* per-channel weights get one scale per output channel (``axis``), per-tensor one scale in all.

The arithmetic is float32 where ONNX Runtime's is, so the quantized levels are the runtime's own
(float64 arithmetic lands one level off on values that sit on a rounding tie).
"""

from __future__ import annotations

import numpy as np

#: (qmin, qmax) of ``get_qmin_qmax_for_qType`` by (weight type, reduce_range); qint8 is symmetric
_WEIGHT_RANGE = {
    ("qint8", False): (-127.0, 127.0),
    ("qint8", True): (-64.0, 64.0),
    ("quint8", False): (0.0, 255.0),
    ("quint8", True): (0.0, 127.0),
}
#: the full range of the stored type, which the quantized values are clipped to
_TYPE_RANGE = {"qint8": (-128.0, 127.0), "quint8": (0.0, 255.0)}


def fake_quant_weight(
    w: np.ndarray, weight_type: str, per_channel: bool, reduce_range: bool, axis: int = -1
) -> np.ndarray:
    """``dequantize(quantize(w))`` as float64, same shape as ``w``: what ``quantize_dynamic`` stores
    for this weight, dequantized (``(q - zero_point) * scale``).

    Args:
        w: a float weight tensor (quantized as float32, as ONNX Runtime reads initializers).
        weight_type: ``"qint8"`` (symmetric) or ``"quint8"`` (asymmetric).
        per_channel: one scale per slice along ``axis`` (the output channels).
        reduce_range: 7-bit ranges (ORT's ``reduce_range``).
    """
    w = np.asarray(w, dtype=np.float32)
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis % w.ndim) if per_channel and w.ndim > 1 else None
    lo = np.minimum(w.min(axis=reduce_axes, keepdims=True), np.float32(0))
    hi = np.maximum(w.max(axis=reduce_axes, keepdims=True), np.float32(0))
    qmin, qmax = _WEIGHT_RANGE[(weight_type, reduce_range)]
    symmetric = weight_type == "qint8"
    if symmetric:
        hi = np.maximum(np.abs(lo), np.abs(hi))
        lo = -hi
    scale64 = (hi.astype(np.float64) - lo.astype(np.float64)) / (qmax - qmin)
    tiny = scale64 < np.finfo(np.float32).tiny  # an all-zero slice: scale 1, zero point 0
    if symmetric:
        zero = np.zeros_like(scale64)
    else:
        zero = np.where(tiny, 0.0, np.round(qmin - lo / np.where(tiny, 1.0, scale64)))
    scale = np.where(tiny, 1.0, scale64).astype(np.float32)
    low, high = _TYPE_RANGE[weight_type]
    q = np.clip(np.round(w / scale) + zero.astype(np.float32), low, high)
    return (q.astype(np.float64) - zero) * scale.astype(np.float64)


def fake_quant_activation(x: np.ndarray) -> np.ndarray:
    """``DynamicQuantizeLinear`` then ``DequantizeLinear``, as float64: one uint8 scale for the whole
    tensor, ``scale = (max(x, 0) - min(x, 0)) / 255`` (1 when that range is 0), in float32."""
    x = np.asarray(x, dtype=np.float32)
    lo = np.minimum(x.min(), np.float32(0)) if x.size else np.float32(0)
    hi = np.maximum(x.max(), np.float32(0)) if x.size else np.float32(0)
    scale = np.float32(1) if hi == lo else (hi - lo) / np.float32(255)
    zero = np.float32(np.round(np.clip(np.float32(0) - lo / scale, 0, 255)))
    q = np.clip(np.round(x / scale) + zero, 0, 255)
    return ((q - zero) * scale).astype(np.float64)
