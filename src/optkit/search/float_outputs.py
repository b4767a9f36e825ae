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
one constant operand (continued through the other); it stops at anything else (a Relu, a Concat,
an Add of two activations). A pair is bypassed only when its dequantized tensor feeds nothing but
the tail (a graph output read only by the tail included) and no subgraph, so no other node loses
its quantized input.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from optkit.onnx_io import all_graphs, save_onnx

#: ops that carry a classifier's scores to its outputs without mixing channels into new features
TAIL_OPS = frozenset(
    {"Softmax", "LogSoftmax", "Sigmoid", "Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose"}
)
#: element-wise ops continued through when one operand is a constant (a bias or a fixed scale)
CONSTANT_OPERAND_OPS = frozenset({"Add", "Sub", "Mul", "Div"})


def keep_outputs_float(model: onnx.ModelProto) -> int:
    """Bypass, in place, the Q/DQ pairs on the tail of ``model`` that leads to its graph outputs;
    graph output names are kept.

    Args:
        model: a QDQ model (``QuantizeLinear``/``DequantizeLinear`` around float ops, as ONNX
            Runtime's ``quantize_static`` writes it in QDQ format); an fp32 model is left as it is.

    A pair ``t → Q → DQ → d`` is bypassed only when every reader of ``d`` is a node of the tail
    (or ``d`` is a graph output read by nothing else), no subgraph (``If``/``Loop``/``Scan`` body)
    reads ``d``; the ``Q`` goes too when nothing else reads its output. Where ``t`` cannot take
    the output's name (a graph input, an initializer, another graph output, a tensor a subgraph
    reads), an ``Identity(t) → d`` replaces the DQ instead. Only the scales and zero points of the
    removed nodes are dropped from the initializers.

    Returns:
        The number of Q/DQ pairs bypassed.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    inner = _subgraph_reads(graph)  # read by a subgraph body: never rewired
    constants = {t.name for t in graph.initializer} | {
        out for node in graph.node if node.op_type == "Constant" for out in node.output
    }
    outputs = {o.name for o in graph.output}
    fixed = outputs | {i.name for i in graph.input} | constants | inner  # names that cannot be renamed away
    tail: set[int] = set()  # ids of the nodes walked (their inputs may lose their Q/DQ)
    removed: list[onnx.NodeProto] = []
    gone: set[int] = set()  # ids of the nodes in removed
    added: list[tuple[onnx.NodeProto, onnx.NodeProto]] = []  # (Identity, the DQ it replaces)
    bypassed = 0
    todo = list(outputs)
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or id(node) in gone:
            continue
        if node.op_type == "DequantizeLinear":
            quant = producer.get(node.input[0])
            users = [u for u in readers.get(name, []) if id(u) not in gone]
            if quant is None or quant.op_type != "QuantizeLinear" or name in inner:
                continue
            if not all(id(u) in tail for u in users):
                continue  # another node reads the dequantized tensor: it keeps its quantized input
            source = quant.input[0]
            removed.append(node)
            gone.add(id(node))
            if name not in outputs:  # the tail's readers take the float tensor itself
                for user in users:
                    user.input[:] = [source if i == name else i for i in user.input]
                    readers.setdefault(source, []).append(user)
            elif source in fixed or source not in producer:
                identity = onnx.helper.make_node("Identity", [source], [name], name=f"{name}_float_output")
                added.append((identity, node))
                producer[name] = identity
            else:  # the float tensor takes the output's name
                _rename(graph, producer, readers, source, name)
                source = name
            others = [u for u in readers.get(quant.output[0], []) if id(u) not in gone]
            if not others and quant.output[0] not in outputs and quant.output[0] not in inner:
                removed.append(quant)
                gone.add(id(quant))
            bypassed += 1
            todo.append(source)
        elif node.op_type in TAIL_OPS and node.input:
            tail.add(id(node))
            todo.append(node.input[0])
        elif node.op_type in CONSTANT_OPERAND_OPS and len(node.input) == 2:
            variable = [i for i in node.input if not _is_constant(i, producer, constants)]
            if len(variable) == 1:
                tail.add(id(node))
                todo.append(variable[0])
    if removed:
        _rebuild(graph, removed, added)
    return bypassed


def rewrite_saved(model: onnx.ModelProto, path: Path, external_threshold_mb: float = 1800.0) -> int:
    """:func:`keep_outputs_float` on ``model`` (loaded from ``path``, external data included), and
    ``path`` rewritten when a pair was bypassed: external data again when ``path`` had it (the old
    ``<name>.data`` removed first: onnx appends to an existing data file, which would keep the
    stale copy), else by ``external_threshold_mb``. Returns the number of pairs bypassed."""
    bypassed = keep_outputs_float(model)
    if bypassed:
        data = path.with_name(path.name + ".data")  # where ORT's quantizer writes external data
        external = data.exists()
        data.unlink(missing_ok=True)
        save_onnx(model, path, 0.0 if external else external_threshold_mb)
    return bypassed


def _rebuild(graph: onnx.GraphProto, removed: list[onnx.NodeProto], added: list) -> None:
    """Drop the ``removed`` nodes (an ``added`` Identity takes its DQ's place), then the removed
    nodes' scales and zero points no node reads any more, and the value_info of tensors gone or
    now graph outputs."""
    gone = {id(n) for n in removed}
    instead = {id(dq): identity for identity, dq in added}
    kept = []
    for node in graph.node:
        if id(node) in instead:
            kept.append(instead[id(node)])
        elif id(node) not in gone:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output} | _subgraph_reads(graph)
    params = {i for n in removed for i in n.input[1:]}  # scale, zero point
    inits = [t for t in graph.initializer if t.name in used or t.name not in params]
    if len(inits) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(inits)
    produced = {o for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}
    infos = [v for v in graph.value_info if v.name in produced and v.name not in outputs]
    if len(infos) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(infos)


def _subgraph_reads(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name a subgraph (an ``If``/``Loop``/``Scan`` body, at any depth) reads."""
    bodies = [g for g in all_graphs(graph) if g is not graph]
    return {i for body in bodies for n in body.node for i in n.input}


def _is_constant(name: str, producer: dict, constants: set[str]) -> bool:
    """True for a constant (an initializer, a Constant's output) or its ``DequantizeLinear`` (a
    quantized bias or scale)."""
    if name in constants:
        return True
    node = producer.get(name)
    return node is not None and node.op_type == "DequantizeLinear" and node.input[0] in constants


def _rename(graph: onnx.GraphProto, producer: dict, readers: dict, old: str, new: str) -> None:
    """Give the tensor ``old`` the name ``new`` (its producer's output and every reader)."""
    node = producer.pop(old)
    node.output[:] = [new if o == old else o for o in node.output]
    producer[new] = node
    for user in readers.pop(old, []):
        user.input[:] = [new if i == old else i for i in user.input]
        readers.setdefault(new, []).append(user)


__all__ = ["CONSTANT_OPERAND_OPS", "TAIL_OPS", "keep_outputs_float", "rewrite_saved"]
