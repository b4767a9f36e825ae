"""Keep a QDQ model's outputs in float: drop the QuantizeLinear/DequantizeLinear pairs on the
path from its last matrix product or convolution to each graph output.

ONNX Runtime's static quantizer (``quantize_static``, QDQ format) puts a Q/DQ pair on every
activation it can, the graph outputs included: a classifier's logits and its Softmax
probabilities come out as multiples of one 8-bit step (1/255 for probabilities in [0, 1]). Two
classes within half a step of each other then tie exactly, and argmax picks the lower index:
label flips that no calibration or fp32 fallback of convolutions can remove (measured on the
MobileNetV2 digits sample, docs/benchmarks.md). Keeping the network's last layer output in
higher precision is standard practice (Nagel et al. 2021, "A White Paper on Neural Network
Quantization", §3: the output of the final layer is kept in higher precision; the same is what
ORT's ``OpTypesToExcludeOutputQuantization`` extra option does for whole op types). The int8
matrix product still runs: ORT fuses ``DQ → Gemm/MatMul`` without an output Q into its
float-output kernels (QGemm with no ``y_scale``, MatMulIntegerToFloat).

The walk starts at each graph output and goes back through (a) a ``DequantizeLinear`` fed by a
``QuantizeLinear`` (the pair is bypassed), (b) :data:`TAIL_OPS` (a Softmax, a reshape of the
scores: continued through their data input), and (c) a bias ``Add``/``Sub``/``Mul``/``Div`` with
one constant operand (continued through the other); it stops at anything else. A pair is bypassed
only when its dequantized tensor feeds nothing but the tail (or is the graph output), so no other
node loses its quantized input.
"""

from __future__ import annotations

import onnx

#: ops that carry a classifier's scores to its outputs without mixing channels into new features
TAIL_OPS = frozenset(
    {"Softmax", "LogSoftmax", "Sigmoid", "Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose"}
)
#: element-wise ops continued through when one operand is a constant (a bias or a fixed scale)
CONSTANT_OPERAND_OPS = frozenset({"Add", "Sub", "Mul", "Div"})


def keep_outputs_float(model: onnx.ModelProto) -> int:
    """Bypass, in place, the Q/DQ pairs on the tail of ``model`` (a QDQ model) that leads to its
    graph outputs; graph output names are kept.

    Returns:
        The number of Q/DQ pairs bypassed (0 when the outputs were already float, or the model is
        not in QDQ format).
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {t.name for t in graph.initializer} | {
        out for node in graph.node if node.op_type == "Constant" for out in node.output
    }
    outputs = {o.name for o in graph.output}
    tail: set[int] = set()  # ids of the nodes walked (their inputs may lose their Q/DQ)
    removed: set[int] = set()
    bypassed = 0
    todo = list(outputs)
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or id(node) in removed:
            continue
        if node.op_type == "DequantizeLinear":
            quant = producer.get(node.input[0])
            users = consumers.get(name, [])
            if quant is None or quant.op_type != "QuantizeLinear":
                continue
            if not all(id(u) in tail for u in users) or (name in outputs and users):
                continue  # another node reads the dequantized tensor: it keeps its quantized input
            source = quant.input[0]
            if name in outputs:  # the float tensor takes the output's name
                _rename(graph, producer, consumers, source, name)
                removed.add(id(node))
                if not any(id(u) not in removed for u in consumers.get(quant.output[0], [])):
                    removed.add(id(quant))
                todo.append(name)
            else:
                for user in users:
                    user.input[:] = [source if i == name else i for i in user.input]
                    consumers.setdefault(source, []).append(user)
                removed.add(id(node))
                if not any(id(u) not in removed for u in consumers.get(quant.output[0], [])):
                    removed.add(id(quant))
                todo.append(source)
            bypassed += 1
        elif node.op_type in TAIL_OPS and node.input:
            tail.add(id(node))
            todo.append(node.input[0])
        elif node.op_type in CONSTANT_OPERAND_OPS and len(node.input) == 2:
            variable = [i for i in node.input if not _is_constant(i, producer, constants)]
            if len(variable) == 1:
                tail.add(id(node))
                todo.append(variable[0])
    if removed:
        kept = [n for n in graph.node if id(n) not in removed]
        del graph.node[:]
        graph.node.extend(kept)
        _drop_unused_initializers(graph)
    return bypassed


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """Remove the initializers no node reads any more (the bypassed pairs' scales and zero points;
    ONNX Runtime warns about each one at every session start)."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    if len(kept) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


def _is_constant(name: str, producer: dict, constants: set[str]) -> bool:
    """True for a constant (an initializer, a Constant's output) or its ``DequantizeLinear`` (a
    quantized bias or scale)."""
    if name in constants:
        return True
    node = producer.get(name)
    return node is not None and node.op_type == "DequantizeLinear" and node.input[0] in constants


def _rename(graph: onnx.GraphProto, producer: dict, consumers: dict, old: str, new: str) -> None:
    """Give the tensor ``old`` the name ``new`` (its producer's output and every reader)."""
    node = producer.pop(old)
    node.output[:] = [new if o == old else o for o in node.output]
    producer[new] = node
    for user in consumers.pop(old, []):
        user.input[:] = [new if i == old else i for i in user.input]
        consumers.setdefault(new, []).append(user)
    for info in graph.value_info:
        if info.name == old:
            info.name = new


__all__ = ["CONSTANT_OPERAND_OPS", "TAIL_OPS", "keep_outputs_float"]
