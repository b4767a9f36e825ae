"""Dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``).

Works on fused models: shape inference cannot see through com.microsoft ops, which makes the
quantizer raise ``Unable to find data type for weight_name=...``; passing
``extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}`` (onnxruntime quantization docs)
tells it to assume float for such tensors.

With ``search: accuracy-aware`` the pass hands over to :mod:`optkit.search.int8_search`.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

from optkit.errors import PassError
from optkit.onnx_io import load_onnx, op_counts
from optkit.passes.base import PassContext, PassOutcome
from optkit.recipe import QuantizeDynamicPass

QUANTIZED_OP_PREFIXES = ("MatMulInteger", "DynamicQuantize", "QAttention", "ConvInteger", "QGemm",
                         "MatMulIntegerToFloat", "QEmbedLayerNormalization", "DynamicQuantizeLSTM")


def quantize(model_path: Path, out: Path, weight_type: str, per_channel: bool, reduce_range: bool,
             op_types: list[str] | None, nodes_to_exclude: list[str]) -> dict[str, int]:
    """Write the dynamically quantized ``model_path`` to ``out``.

    Returns:
        ``{quantized op type: count}`` in the output (e.g. ``{"QAttention": 6, "MatMulInteger": 37}``).

    Raises:
        PassError: onnxruntime's quantizer fails.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs advice through the root logger
    try:
        quantize_dynamic(
            str(model_path), str(out),
            op_types_to_quantize=op_types,
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type={"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[weight_type],
            nodes_to_exclude=nodes_to_exclude or None,
            use_external_data_format=model_path.with_suffix(".onnx.data").exists(),
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk is reported as such by the CLI (exit 2), not as a quantizer problem
        raise PassError(f"dynamic quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                        "check that the model and its external data are readable") from exc
    except Exception as exc:  # the quantizer raises assorted errors
        raise PassError(f"dynamic quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                        "try quantize-dynamic.op_types: [MatMul] or exclude the failing node") from exc
    return {k: v for k, v in op_counts(load_onnx(out)).items() if k.startswith(QUANTIZED_OP_PREFIXES)}


def run(model_path: Path, config: QuantizeDynamicPass, ctx: PassContext) -> PassOutcome:
    """Quantize weights to int8; returns the model with counts of quantized ops in ``details``.

    Raises:
        PassError: onnxruntime's quantizer fails (or, with a search, the search cannot run).
    """
    if config.search == "accuracy-aware":
        from optkit.search.int8_search import search

        return search(model_path, config, ctx)
    out = ctx.output_path("quantize-dynamic")
    quantized = quantize(model_path, out, config.weight_type, config.per_channel, config.reduce_range,
                         config.op_types, config.nodes_to_exclude)
    details = {"weight_type": config.weight_type, "per_channel": config.per_channel,
               "reduce_range": config.reduce_range, "op_types": config.op_types,
               "nodes_to_exclude": config.nodes_to_exclude, "quantized_ops": quantized}
    warnings = [] if quantized else ["no node was quantized (no MatMul/Gemm/Conv/Attention found)"]
    return PassOutcome(out, details, warnings)
