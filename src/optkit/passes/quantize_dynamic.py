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
from typing import Literal

from pydantic import Field

from optkit.errors import PassError
from optkit.onnx_io import load_onnx, op_counts
from optkit.passes.base import PassContext, PassOutcome
from optkit.strict import StrictModel


class Int8SearchSpace(StrictModel):
    """What the accuracy-aware int8 search tries (see ``docs/recipes.md``, "Accuracy-aware search").

    Stage 1 tries every combination of ``weight_types`` × ``per_channel`` × ``reduce_range`` on the
    ORT default op types. Only when none of them passes: stage 2 (``op_type_subsets``) leaves out
    one quantizable op type at a time from the most accurate stage-1 setting, and stage 3
    (``node_fallback``) keeps its most sensitive nodes in fp32 (1, 2, 4, … of them) until the gates
    hold. The fastest passing candidate wins.
    """

    weight_types: list[Literal["qint8", "quint8"]] = Field(
        default_factory=lambda: ["qint8", "quint8"], min_length=1, description="stage 1: weight types tried")
    per_channel: list[bool] = Field(
        default_factory=lambda: [True, False], min_length=1, description="stage 1: per_channel settings tried")
    reduce_range: list[bool] = Field(
        default_factory=lambda: [False, True], min_length=1, description="stage 1: reduce_range settings tried")
    op_type_subsets: bool = Field(True, description="also try leaving out each quantizable op type")
    node_fallback: bool = Field(True, description="keep the most sensitive nodes in fp32 when nothing passes")
    allow_fp32: bool = Field(
        False, description="accept a model with every node kept in fp32 when no int8 candidate passes")
    sensitivity_samples: int = Field(16, ge=1, description="validation samples used to rank node sensitivity")
    latency_tolerance: float = Field(
        0.05, ge=0, le=1, description="candidates within this fraction of the fastest count as equally fast; "
        "the earliest in search order wins (keeps the choice deterministic despite timing noise)")


class QuantizeDynamicPass(StrictModel):
    """Dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``): weights are
    quantized offline, activations at run time. Works on fused models (com.microsoft ops).

    With ``search: accuracy-aware`` the settings below are ignored: optkit searches
    ``search_space`` for the fastest candidate that meets the recipe's accuracy gates.
    """

    type: Literal["quantize-dynamic"] = Field(description="selects this pass: dynamic int8 quantization")
    weight_type: Literal["qint8", "quint8"] = Field("qint8", description="int8 weight type: signed or unsigned")
    per_channel: bool = Field(True, description="one scale per output channel (more accurate)")
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI overflow")
    op_types: list[str] | None = Field(None, description="op types to quantize; null = ORT default")
    nodes_to_exclude: list[str] = Field(default_factory=list, description="node names kept in float32")
    search: Literal["off", "accuracy-aware"] = Field(
        "off", description="'accuracy-aware': search settings and fp32 fallback nodes against the accuracy gates")
    search_space: Int8SearchSpace = Field(
        default_factory=Int8SearchSpace, description="what the search tries (only with search: accuracy-aware)")
    search_budget_s: float = Field(
        900.0, gt=0, description="wall-time budget of the search, seconds; --search-budget overrides")

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
