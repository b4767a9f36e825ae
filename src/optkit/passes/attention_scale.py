"""Rewrite unmasked attention scaled by a ``Mul`` into the ``Div`` form ONNX Runtime's fusion matches.

transformers' eager attention (v5, ``eager_attention_forward``) scales the scores after the product,
``softmax(matmul(q, k^T) * scaling)``. With an attention mask an ``Add`` sits between ``Mul`` and
``Softmax``, a pattern ORT's ``FusionAttention`` knows (``Softmax, Add, Mul, MatMul``); without one
(ViT, DeiT, wav2vec2 exported without ``attention_mask``) the graph is ``Softmax <- Mul(c) <- MatMul``,
and ORT (1.2x, ``fusion_attention.py``, ``qk_paths["path5"]``) only matches the unmasked form with a
``Div``: ``Softmax <- Div <- MatMul``. So a ViT gets 0 Attention fusions under either ``bert`` or
``vit``. Rewriting ``x * c`` as ``x / (1 / c)`` is the same value up to one rounding, and it is only
done where ``c`` is the standard ``1 / sqrt(head size)`` that ORT's fused ``Attention`` applies
itself (it reads no scale from the matched ``Div``), so the fused model computes what the source does.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

#: relative tolerance on ``c * sqrt(head size) == 1`` (fp32 rounding of the exporter's constant)
SCALE_RTOL = 1e-5


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Values of the graph's initializers and ``Constant`` nodes' ``value`` tensors, by output name."""
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def divide_attention_scale(model: onnx.ModelProto, head_size: int) -> int:
    """Rewrite, in place, each ``Softmax(Mul(MatMul(q, k), c))`` of ``model``'s main graph whose
    scalar ``c`` equals ``1 / sqrt(head_size)`` into ``Softmax(Div(MatMul(q, k), 1 / c))``.

    Args:
        model: an ONNX model (float attention scores; the constant keeps its dtype).
        head_size: hidden size / attention heads; 0 or less rewrites nothing (unknown shape).

    Returns:
        How many ``Mul`` nodes were rewritten (0 when the graph has no such pattern).
    """
    if head_size <= 0:
        return 0
    graph = model.graph
    constants = _constants(graph)
    producer = {out: node for node in graph.node for out in node.output}
    taken = {init.name for init in graph.initializer}
    rewritten = 0
    for softmax in graph.node:
        if softmax.op_type != "Softmax" or not softmax.input:
            continue
        mul = producer.get(softmax.input[0])
        if mul is None or mul.op_type != "Mul" or len(mul.input) != 2:
            continue
        scores, scale = mul.input
        if scores in constants:
            scores, scale = scale, scores
        matmul = producer.get(scores)
        value = constants.get(scale)
        if matmul is None or matmul.op_type != "MatMul" or value is None or value.size != 1:
            continue
        if value.dtype.kind != "f" or not math.isclose(
            float(value.reshape(())) * math.sqrt(head_size), 1.0, rel_tol=SCALE_RTOL
        ):
            continue
        name = f"{scale}_reciprocal"
        while name in taken:
            name += "_"
        taken.add(name)
        graph.initializer.append(numpy_helper.from_array((1 / value).astype(value.dtype), name))
        mul.op_type = "Div"
        del mul.input[:]
        mul.input.extend([scores, name])
        rewritten += 1
    return rewritten
