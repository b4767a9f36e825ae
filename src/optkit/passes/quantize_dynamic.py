"""Dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``).

Works on fused models: shape inference cannot see through com.microsoft ops, which makes the
quantizer raise ``Unable to find data type for weight_name=...``; passing
``extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}`` (onnxruntime quantization docs)
tells it to assume float for such tensors.
"""

from __future__ import annotations

import logging
from pathlib import Path

from optkit.errors import PassError
from optkit.onnx_io import load_onnx, op_counts
from optkit.passes.base import PassContext, PassOutcome
from optkit.recipe import QuantizeDynamicPass


def run(model_path: Path, config: QuantizeDynamicPass, ctx: PassContext) -> PassOutcome:
    """Quantize weights to int8; returns the model with counts of quantized ops in ``details``.

    Raises:
        PassError: onnxruntime's quantizer fails.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = ctx.output_path("quantize-dynamic")
    weight_type = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[config.weight_type]
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs advice through the root logger
    try:
        quantize_dynamic(
            str(model_path), str(out),
            op_types_to_quantize=config.op_types,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=weight_type,
            nodes_to_exclude=config.nodes_to_exclude or None,
            use_external_data_format=model_path.with_suffix(".onnx.data").exists(),
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    except Exception as exc:  # the quantizer raises assorted errors
        raise PassError(f"dynamic quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                        "try quantize-dynamic.op_types: [MatMul] or exclude the failing node") from exc
    counts = op_counts(load_onnx(out))
    quantized = {k: v for k, v in counts.items() if k.startswith(("MatMulInteger", "DynamicQuantize", "QAttention",
                                                                 "ConvInteger", "QGemm", "MatMulIntegerToFloat"))}
    details = {"weight_type": config.weight_type, "per_channel": config.per_channel,
               "reduce_range": config.reduce_range, "op_types": config.op_types,
               "nodes_to_exclude": config.nodes_to_exclude, "quantized_ops": quantized}
    warnings = [] if quantized else ["no node was quantized (no MatMul/Gemm/Conv/Attention found)"]
    return PassOutcome(out, details, warnings)
