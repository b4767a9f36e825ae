"""Is an "int8" model really computing in int8? Counts of the int8 compute ops of an ONNX graph,
and the gate that fails a quantized recipe whose final model has none.

A search that keeps every MatMul and Attention in float32 (the fp32 fallback of
:mod:`optkit.search.int8_search`) can end with a model that only quantizes an embedding lookup or
nothing at all: approving it as "int8" would be a claim the artifact does not hold. The gate
``int8_compute_ops >= 1`` fails such a model unless the pass allows an all-float32 outcome
(``search_space.allow_fp32`` of ``quantize-dynamic``, ``allow_fp32`` of ``quantize-static``).

What counts as int8 compute (a matrix product or convolution on int8 operands):

* operator-format ops: ``MatMulInteger``, ``MatMulIntegerToFloat``, ``DynamicQuantizeMatMul``,
  ``QLinearMatMul``, ``QGemm``, ``ConvInteger``, ``QLinearConv``, ``QAttention``,
  ``DynamicQuantizeLSTM``, ``QEmbedLayerNormalization`` (ONNX and com.microsoft contrib ops);
* QDQ format: a ``MatMul``, ``Gemm`` or ``Conv`` whose first two inputs (activation and weight)
  both come straight from a ``DequantizeLinear`` (ONNX Runtime fuses the pattern into an int8
  kernel; its QDQ selectors require both), counted as ``QDQ <op>``.

Not counted: ``DynamicQuantizeLinear`` / ``QuantizeLinear`` alone (they convert, they do not compute)
a ``DequantizeLinear`` feeding a ``Gather`` (int8 storage of an embedding table, float compute), and
a product with only one dequantized operand (e.g. the dequantized output of that ``Gather``).
"""

from __future__ import annotations

import onnx

#: op types that compute on int8 operands (operator format)
INT8_COMPUTE_OPS = frozenset(
    {
        "MatMulInteger",
        "MatMulIntegerToFloat",
        "DynamicQuantizeMatMul",
        "QLinearMatMul",
        "QGemm",
        "ConvInteger",
        "QLinearConv",
        "QAttention",
        "DynamicQuantizeLSTM",
        "QEmbedLayerNormalization",
    }
)
#: float ops that run in int8 when an input comes from a DequantizeLinear (QDQ format)
QDQ_COMPUTE_OPS = frozenset({"MatMul", "Gemm", "Conv"})

GATE_NAME = "int8_compute_ops >= 1"


def int8_compute_ops(model: onnx.ModelProto) -> dict[str, int]:
    """``{op: count}`` of the int8 compute ops in ``model``'s main graph (see the module docstring),
    sorted by name; QDQ pairs as ``"QDQ MatMul"`` etc. Empty when the model computes in float only."""
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in INT8_COMPUTE_OPS:
            key = node.op_type
        elif _qdq(node, dequantized):
            key = f"QDQ {node.op_type}"
        else:
            continue
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _qdq(node: onnx.NodeProto, dequantized: set[str]) -> bool:
    """A MatMul/Gemm/Conv whose activation and weight both come from a DequantizeLinear."""
    return (
        node.op_type in QDQ_COMPUTE_OPS and len(node.input) >= 2 and all(name in dequantized for name in node.input[:2])
    )


def float_compute_ops(model: onnx.ModelProto) -> dict[str, int]:
    """``{op: count}`` of the matrix-product and convolution ops left in float (``MatMul``,
    ``Gemm``, ``Conv``, ``Attention`` not fed by a DequantizeLinear): what the message names."""
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in QDQ_COMPUTE_OPS | {"Attention"} and not _qdq(node, dequantized):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def no_int8_reason(pass_type: str, model: onnx.ModelProto, flag: str) -> str:
    """The one-line reason of a failed :data:`GATE_NAME` gate: which float ops remain and the flag
    that accepts the outcome.

    Args:
        pass_type: the quantize pass (``"quantize-dynamic"``).
        model: the final model.
        flag: the recipe key that allows an all-float32 model (``"search_space.allow_fp32"``).
    """
    left = float_compute_ops(model)
    kept = ", ".join(f"{n} {op}" for op, n in left.items()) or "no MatMul, Gemm, Conv or Attention at all"
    return (
        f"no int8 compute left after {pass_type}: the final model keeps every matrix product in "
        f"float32 ({kept}); set {pass_type}.{flag}: true to accept a float32 model, or loosen the "
        "accuracy gates / use quantize-static with calibration data"
    )
