"""Static int8 quantization with calibration (``onnxruntime.quantization.quantize_static``).

Activations get fixed scales computed from calibration data (MinMax by default), so no run-time
quantization ops are needed: the right choice for CNNs, where dynamic quantization's ConvInteger
is slower than float Conv on CPU (measured: docs/benchmarks.md). The model is first pre-processed
with ``quant_pre_process`` (shape inference and graph cleanup, as onnxruntime's docs recommend).
Calibration data should not be the validation data; when none is given the pass falls back to the
validation inputs and says so, because accuracy figures are then optimistic.

With ``search: true`` the pass hands the pre-processed model and its calibration batches to
:mod:`optkit.search.static_search` (calibration method × per-channel × activation encoding, then
fp32 fallback of depthwise convolutions first), scored against the recipe's accuracy gates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optkit.errors import PassError
from optkit.onnx_io import load_onnx, op_counts
from optkit.pass_context import PassContext, PassOutcome
from optkit.quiet_logs import quiet_logs
from optkit.recipe import QuantizeStaticPass
from optkit.records.figures import Figure
from optkit.runners.base import Feeds
from optkit.search.float_outputs import rewrite_saved
from optkit.validation.int8_compute import int8_compute_ops


def _reader(feeds: Feeds, input_types: dict[str, type | None], batch: int):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            size = len(next(iter(feeds.values())))
            self.batches = iter(
                [
                    {
                        n: np.ascontiguousarray(v[i : i + batch], dtype=input_types.get(n) or v.dtype)
                        for n, v in feeds.items()
                    }
                    for i in range(0, size, batch)
                ]
            )

        def get_next(self):
            return next(self.batches, None)

    return Reader()


def even_batch(size: int, most: int = 16) -> int:
    """The largest batch size ``<= most`` that divides ``size`` (1 when ``size`` is prime and larger):
    ORT's histogram calibrators (percentile, entropy) stack every batch's activations into one
    array and fail on a shorter last batch (``ValueError: ... inhomogeneous shape``)."""
    return max(b for b in range(1, min(most, size) + 1) if size % b == 0)


def run(model_path: Path, config: QuantizeStaticPass, ctx: PassContext) -> PassOutcome:
    """Calibrate and quantize; ``details`` records the calibration source and quantized ops.

    Raises:
        PassError: no calibration data, or onnxruntime's quantizer fails.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from optkit.runners.ort_runner import ORT_DTYPES

    warnings = []
    if config.calibration_data:
        from optkit.validation.data import load_validation_set

        calib = load_validation_set(config.calibration_data, ctx.info, config.calibration_samples, 128).feeds
        source = config.calibration_data
    elif ctx.validation is not None:
        calib = {k: v[: config.calibration_samples] for k, v in ctx.validation.feeds.items()}
        source = "validation data (fallback)"
        warnings.append(
            "calibrated on the validation data itself: accuracy figures are optimistic; "
            "set quantize-static.calibration_data to a separate split"
        )
    else:
        raise PassError("quantize-static needs calibration data", "set quantize-static.calibration_data (.npz)")
    pre = ctx.output_path("preprocess")
    try:
        quant_pre_process(str(model_path), str(pre), skip_symbolic_shape=True)
    except Exception as exc:  # pre-processing is an aid; quantize the original if it fails
        warnings.append(f"quant_pre_process failed, quantizing without it: {str(exc).splitlines()[0][:160]}")
        pre = model_path
    if config.search:
        from optkit.search.static_search import search

        size = len(next(iter(calib.values())))
        step = even_batch(size)
        batches = [{k: v[i : i + step] for k, v in calib.items()} for i in range(0, size, step)]
        outcome = search(pre, config, ctx, batches, f"{source} ({size} samples)")
        quantized = load_onnx(outcome.model_path)
        outcome.details = {
            "calibration": source,
            "calibration_samples": size,
            "quant_format": "qdq",
            **outcome.details,
            "quantize_linear_nodes": op_counts(quantized).get("QuantizeLinear", 0),
            "int8_compute_ops": dict(int8_compute_ops(quantized)),
        }
        outcome.warnings[:0] = warnings
        return outcome
    import onnxruntime as ort

    session = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"])
    types = {i.name: ORT_DTYPES.get(i.type) for i in session.get_inputs()}
    out = ctx.output_path("quantize-static")
    qtype = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}
    try:
        with quiet_logs():  # the quantizer logs advice through the root logger
            quantize_static(
                str(pre),
                str(out),
                _reader(calib, types, 16),
                quant_format={"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[config.quant_format],
                op_types_to_quantize=config.op_types,
                per_channel=config.per_channel,
                activation_type=qtype[config.activation_type],
                weight_type=qtype[config.weight_type],
                nodes_to_exclude=config.nodes_to_exclude or None,
                calibrate_method={
                    "minmax": CalibrationMethod.MinMax,
                    "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile,
                }[config.calibrate_method],
            )
    except Exception as exc:
        raise PassError(
            f"static quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            "try quantize-static.op_types: [Conv, MatMul] or exclude the failing node",
        ) from exc
    quantized = load_onnx(out)
    bypassed = 0
    if config.float_outputs and config.quant_format == "qdq":
        bypassed = rewrite_saved(quantized, out, ctx.external_threshold_mb)
    counts = op_counts(quantized)
    details: dict[str, Figure] = {
        "calibration": source,
        "calibration_samples": len(next(iter(calib.values()))),
        "calibrate_method": config.calibrate_method,
        "quant_format": config.quant_format,
        "per_channel": config.per_channel,
        "activation_type": config.activation_type,
        "weight_type": config.weight_type,
        "float_outputs": config.float_outputs and config.quant_format == "qdq",
        "output_qdq_pairs_bypassed": bypassed,
        "quantize_linear_nodes": counts.get("QuantizeLinear", 0),
        "int8_compute_ops": dict(int8_compute_ops(quantized)),
    }
    return PassOutcome(out, details, warnings)
