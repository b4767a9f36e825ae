"""Dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``).

The quantizer call itself is :func:`optkit.search.ort_quantize.quantize` (shared with the search).

With ``search: accuracy-aware`` the pass hands over to :mod:`optkit.search.int8_search`.
"""

from __future__ import annotations

from pathlib import Path

from optkit.onnx_io import load_onnx
from optkit.pass_context import PassContext, PassOutcome
from optkit.recipe import QuantizeDynamicPass
from optkit.records.figures import Figure
from optkit.search.ort_quantize import QUANTIZED_OP_PREFIXES, quantize
from optkit.validation.int8_compute import int8_compute_ops

__all__ = ["QUANTIZED_OP_PREFIXES", "quantize", "run"]  # quantize: re-exported for callers of the old home


def run(model_path: Path, config: QuantizeDynamicPass, ctx: PassContext) -> PassOutcome:
    """Quantize weights to int8; returns the model with counts of quantized ops in ``details``
    (``quantized_ops``: what the quantizer wrote; ``int8_compute_ops``: the int8 matrix products
    and convolutions of the result, :func:`~optkit.validation.int8_compute.int8_compute_ops`, on
    which the pipeline's ``int8_compute_ops`` gate rests).

    Raises:
        PassError: onnxruntime's quantizer fails (or, with a search, the search cannot run).
    """
    if config.search == "accuracy-aware":
        from optkit.search.int8_search import search

        outcome = search(model_path, config, ctx)
        outcome.details["int8_compute_ops"] = dict(int8_compute_ops(load_onnx(outcome.model_path)))
        return outcome
    out = ctx.output_path("quantize-dynamic")
    quantized = quantize(
        model_path,
        out,
        config.weight_type,
        config.per_channel,
        config.reduce_range,
        config.op_types,
        config.nodes_to_exclude,
    )
    details: dict[str, Figure] = {
        "weight_type": config.weight_type,
        "per_channel": config.per_channel,
        "reduce_range": config.reduce_range,
        "op_types": config.op_types,
        "nodes_to_exclude": config.nodes_to_exclude,
        "quantized_ops": quantized,
        "int8_compute_ops": dict(int8_compute_ops(load_onnx(out))),
    }
    warnings = [] if quantized else ["no node was quantized (no MatMul/Gemm/Conv/Attention found)"]
    return PassOutcome(out, details, warnings)
