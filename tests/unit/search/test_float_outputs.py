"""A static QDQ model keeps its outputs in float (``optkit.search.float_outputs``): the Q/DQ pairs
between the last Gemm and the graph output are bypassed, the int8 Gemm still runs (ORT's
float-output QGemm), and a dequantized tensor another node reads is left alone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from optkit.search.float_outputs import keep_outputs_float
from optkit.search.ort_static import quantize_static_qdq
from tiny_cnn_onnx import tiny_cnn


def classifier() -> onnx.ModelProto:
    """:func:`tiny_cnn` with a Softmax after its Gemm: x (N, 3, 8, 8) -> probs (N, 4)."""
    model = tiny_cnn()
    graph = model.graph
    graph.node[-1].output[0] = "logits"
    graph.node.append(helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4]))
    return model


def batches(n: int = 4) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.normal(size=(8, 3, 8, 8)).astype(np.float32)} for _ in range(n)]


def quantized(tmp_path: Path, float_outputs: bool) -> Path:
    src, out = tmp_path / "fp32.onnx", tmp_path / f"int8-{float_outputs}.onnx"
    onnx.save(classifier(), src)
    quantize_static_qdq(src, out, batches(), "minmax", True, None, [], float_outputs=float_outputs)
    return out


def run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def tail_ops(model: onnx.ModelProto) -> list[str]:
    """Op types from the Gemm to the end, in graph order."""
    names = [n.op_type for n in model.graph.node]
    return names[names.index("Gemm") :]


def test_ort_puts_qdq_on_the_probabilities_without_it(tmp_path):
    model = onnx.load(str(quantized(tmp_path, float_outputs=False)))
    assert tail_ops(model) == ["Gemm", "QuantizeLinear", "DequantizeLinear", "Softmax"] + [
        "QuantizeLinear",
        "DequantizeLinear",
    ]
    x = batches(1)[0]["x"]
    probs = run(tmp_path / "int8-False.onnx", x)
    scale = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name.startswith("probs_scale"))
    steps = probs / scale
    assert np.allclose(steps, np.round(steps), atol=1e-3)  # every probability on the 8-bit grid


def test_float_outputs_bypass_the_output_pairs_and_keep_the_int8_gemm(tmp_path):
    path = quantized(tmp_path, float_outputs=True)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert tail_ops(model) == ["Gemm", "Softmax"]
    assert [o.name for o in model.graph.output] == ["probs"]
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    produced = {o: n.op_type for n in model.graph.node for o in n.output}
    assert [produced.get(i) for i in gemm.input] == ["DequantizeLinear"] * 3  # int8 A, B and int32 bias
    used = {i for n in model.graph.node for i in n.input}
    assert all(t.name in used for t in model.graph.initializer)  # no orphan scales left behind
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    fused = Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)
    assert fused["QGemm"] == 1 and fused["QLinearConv"] == 2


def test_float_outputs_match_orts_own_output_exclusion(tmp_path):
    """The same model as ORT's ``OpTypesToExcludeOutputQuantization: [Gemm]`` with the Softmax
    excluded, and a different one from the fully quantized model."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    ours = quantized(tmp_path, float_outputs=True)
    theirs = tmp_path / "ort.onnx"

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches())

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        str(tmp_path / "fp32.onnx"),
        str(theirs),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=["softmax"],
        extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm"]},
    )
    x = np.random.default_rng(7).normal(size=(16, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(ours, x), run(theirs, x), atol=1e-6)
    assert np.abs(run(ours, x) - run(quantized(tmp_path, float_outputs=False), x)).max() > 1e-4


def qdq(name: str, out: str) -> list[onnx.NodeProto]:
    return [
        helper.make_node("QuantizeLinear", [name, "s", "z"], [f"{name}_q"], name=f"{name}_Q"),
        helper.make_node("DequantizeLinear", [f"{name}_q", "s", "z"], [out], name=f"{name}_DQ"),
    ]


def hand_graph(nodes: list[onnx.NodeProto], outputs: list[str], extra: list[onnx.TensorProto] = ()) -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(128, np.uint8), "z"),
        *extra,
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [2, 3]) for o in outputs],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_bias_add_and_a_reshape_are_walked_through():
    bias = numpy_helper.from_array(np.ones(3, np.float32), "bias")
    shape = numpy_helper.from_array(np.array([2, 3], np.int64), "shape")
    nodes = [
        helper.make_node("Relu", ["x"], ["t"], name="relu"),
        *qdq("t", "t_dq"),
        helper.make_node("Add", ["t_dq", "bias"], ["a"], name="bias_add"),
        *qdq("a", "a_dq"),
        helper.make_node("Reshape", ["a_dq", "shape"], ["y"], name="reshape"),
    ]
    model = hand_graph(nodes, ["y"], [bias, shape])
    assert keep_outputs_float(model) == 2
    assert [n.op_type for n in model.graph.node] == ["Relu", "Add", "Reshape"]
    onnx.checker.check_model(model)


def test_a_dequantized_tensor_another_node_reads_keeps_its_pair():
    nodes = [
        helper.make_node("Relu", ["x"], ["t"], name="relu"),
        *qdq("t", "t_dq"),
        helper.make_node("Softmax", ["t_dq"], ["y1"], name="softmax"),
        helper.make_node("Add", ["t_dq", "x"], ["y2"], name="mix"),  # two variable operands: not a tail
    ]
    model = hand_graph(nodes, ["y1", "y2"])
    before = [n.name for n in model.graph.node]
    assert keep_outputs_float(model) == 0
    assert [n.name for n in model.graph.node] == before


def test_a_graph_output_that_is_also_read_inside_keeps_its_pair():
    nodes = [
        helper.make_node("Relu", ["x"], ["t"], name="relu"),
        *qdq("t", "y1"),
        helper.make_node("Relu", ["y1"], ["y2"], name="relu2"),
    ]
    model = hand_graph(nodes, ["y1", "y2"])
    assert keep_outputs_float(model) == 0
    assert len(model.graph.node) == 4


def test_an_fp32_model_is_unchanged():
    model = classifier()
    before = model.SerializeToString()
    assert keep_outputs_float(model) == 0
    assert model.SerializeToString() == before
