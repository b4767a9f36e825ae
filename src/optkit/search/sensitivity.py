"""Rank the nodes an int8 pass would quantize by how much quantizing each one alone perturbs its
own output, measured on real validation activations (layer-wise sensitivity analysis, as in
NVIDIA's "Integer Quantization for Deep Learning Inference", Wu et al. 2020, §6.2, and ONNX
Runtime's ``qdq_loss_debug``).

For MatMul / Gemm / Attention (the QKV projection) the node's activation inputs are read from a run
of the fp32 model, its weight is fake-quantized with the candidate's settings, activations with
``DynamicQuantizeLinear``'s per-tensor uint8, and the score is the relative error
``||Y_q - Y||_F / ||Y||_F`` of the product. Other op types (Conv, Gather, EmbedLayerNormalization)
are scored by the relative error of their quantized weight alone, with the settings ONNX Runtime
uses for them (tables of Gather / EmbedLayerNormalization: uint8 per tensor; Conv: per tensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import numpy_helper

from optkit.runners.base import Feeds
from optkit.search.fake_quant import fake_quant_activation, fake_quant_weight
from optkit.search.probe import run_probe, with_outputs

#: op type -> index of the weight input that int8 quantization converts
WEIGHT_INPUT = {"MatMul": 1, "Gemm": 1, "Attention": 1, "Conv": 1, "Gather": 0, "EmbedLayerNormalization": 2, "LSTM": 1}
PRODUCT_OPS = ("MatMul", "Gemm", "Attention")


@dataclass
class NodeSensitivity:
    """One node's sensitivity: ``error`` is a relative Frobenius error (0 = exact, 1 = all signal lost)."""

    name: str
    op_type: str
    error: float
    method: Literal["output", "weight"]  # product on real activations, or the weight only


def op_type_of(node: onnx.NodeProto) -> str:
    """The op type ``quantize_dynamic`` sees: it rewrites a plain Gemm (alpha = beta = 1, no transA)
    into a MatMul named ``<name>_MatMul`` before quantizing (onnxruntime ``ONNXModel.
    replace_gemm_with_matmul``), so such a Gemm counts as a MatMul."""
    return "MatMul" if node.op_type == "Gemm" else node.op_type


def _plain_gemm(node: onnx.NodeProto) -> bool:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA", 0)


def quantizable_nodes(model: onnx.ModelProto, op_types: list[str] | None) -> list[onnx.NodeProto]:
    """The nodes dynamic int8 quantization converts, among ``op_types`` (None = ORT's default list):
    MatMul with a constant right-hand side (``MatMulConstBOnly``, quantize_dynamic's default),
    plain Gemm with a constant B (rewritten to MatMul, see :func:`op_type_of`), and Attention /
    Conv / Gather / EmbedLayerNormalization / LSTM with a constant weight."""
    inits = {t.name for t in model.graph.initializer}
    wanted = set(op_types) if op_types else set(WEIGHT_INPUT)
    found = []
    for node in model.graph.node:
        index = WEIGHT_INPUT.get(node.op_type)
        if index is None or op_type_of(node) not in wanted or len(node.input) <= index:
            continue
        if node.input[index] in inits and (node.op_type != "Gemm" or _plain_gemm(node)):
            found.append(node)
    return found


def exclusion_names(model: onnx.ModelProto, names: list[str]) -> list[str]:
    """``nodes_to_exclude`` for keeping ``names`` in float32: a Gemm also under the name of the
    MatMul quantize_dynamic rewrites it to."""
    gemms = {n.name for n in model.graph.node if n.op_type == "Gemm"}
    return [x for name in names for x in ([name, f"{name}_MatMul"] if name in gemms else [name])]


def rank_nodes(
    model: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    batches: list[Feeds],
    workdir: Path,
    threads: int,
    weight_type: str,
    per_channel: bool,
    reduce_range: bool,
) -> list[NodeSensitivity]:
    """Score ``nodes`` of ``model`` (fp32, node names unique) and sort them most sensitive first
    (ties by name, so the order is deterministic).

    Args:
        batches: real validation inputs (a few samples suffice: activations, not metrics).
        weight_type / per_channel / reduce_range: the int8 settings being rescued.
    """
    inits = {t.name: t for t in model.graph.initializer}
    products = [n for n in nodes if n.op_type in PRODUCT_OPS]
    wanted = sorted({n.input[0] for n in products if n.input[0] not in inits})
    errors: dict[str, list[float]] = {n.name: [0.0, 0.0] for n in products}  # sum ||dY||^2, sum ||Y||^2
    weights = {n.name: numpy_helper.to_array(inits[n.input[1]]).astype(np.float64) for n in products}
    quantized = {
        name: fake_quant_weight(w, weight_type, per_channel, reduce_range, axis=0 if _trans_b(node) else -1)
        for node in products
        for name, w in [(node.name, weights[node.name])]
    }

    def visit(tensors: dict[str, np.ndarray]) -> None:
        for node in products:
            a, b = _operands(node, tensors, weights[node.name], inits)
            aq, bq = _operands(node, tensors, quantized[node.name], inits, fake=True)
            y, yq = _product(node, a, b), _product(node, aq, bq)
            errors[node.name][0] += float(np.square(yq - y).sum())
            errors[node.name][1] += float(np.square(y).sum())

    if products:
        run_probe(with_outputs(model, wanted), workdir / "sensitivity-probe.onnx", batches, threads, visit)
    ranked = [
        NodeSensitivity(n.name, n.op_type, float(np.sqrt(errors[n.name][0] / max(errors[n.name][1], 1e-30))), "output")
        for n in products
    ]
    for node in nodes:
        if node.op_type not in PRODUCT_OPS:
            w = numpy_helper.to_array(inits[node.input[WEIGHT_INPUT[node.op_type]]]).astype(np.float64)
            if node.op_type in ("Gather", "EmbedLayerNormalization"):  # tables: uint8, per tensor, always
                wq = fake_quant_weight(w, "quint8", False, False)
            else:  # ConvInteger is per tensor whatever per_channel says
                wq = fake_quant_weight(w, weight_type, node.op_type == "LSTM" and per_channel, reduce_range, axis=0)
            ranked.append(
                NodeSensitivity(
                    node.name,
                    node.op_type,
                    float(np.linalg.norm(wq - w) / max(float(np.linalg.norm(w)), 1e-30)),
                    "weight",
                )
            )
    return sorted(ranked, key=lambda s: (-s.error, s.name))


def _trans_b(node: onnx.NodeProto) -> bool:
    return node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)


def _operands(node, tensors, weight, inits, fake: bool = False):
    """(a, b) of the node's product (the weight is input 1); activations fake-quantized per tensor
    when ``fake``."""
    act = fake_quant_activation if fake else (lambda x: x.astype(np.float64))
    left = node.input[0]
    a = numpy_helper.to_array(inits[left]).astype(np.float64) if left in inits else act(tensors[left])
    return a, weight


def _product(node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if node.op_type == "Gemm":
        attrs = {x.name: x.i for x in node.attribute}
        a = a.T if attrs.get("transA") else a
        b = b.T if attrs.get("transB") else b
    return np.matmul(a, b)
