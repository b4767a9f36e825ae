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


def relu_x(name: str = "t") -> onnx.NodeProto:
    return helper.make_node("Relu", ["x"], [name], name="relu")


def checked(model: onnx.ModelProto) -> list[np.ndarray]:
    """The model passes the full checker and runs; its outputs on a fixed input."""
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)})


def test_logits_and_probabilities_both_outputs_are_both_float():
    """ORT's layout when the logits are an output too: Softmax reads the dequantized logits."""
    nodes = [relu_x(), *qdq("t", "logits"), helper.make_node("Softmax", ["logits"], ["p"], name="softmax", axis=1)]
    nodes += qdq("p", "probs")
    model = hand_graph(nodes, ["logits", "probs"])
    assert keep_outputs_float(model) == 2
    assert [n.op_type for n in model.graph.node] == ["Relu", "Softmax"]
    logits, probs = checked(model)
    np.testing.assert_allclose(logits, np.maximum(np.linspace(-2, 2, 6).reshape(2, 3), 0), atol=1e-6)
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_a_quantized_output_keeps_the_q_that_produces_it():
    nodes = [relu_x(), *qdq("t", "y")]
    model = hand_graph(nodes, ["y"])
    model.graph.output.append(helper.make_tensor_value_info("t_q", TensorProto.UINT8, [2, 3]))
    assert keep_outputs_float(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Relu", "QuantizeLinear"]
    y, t_q = checked(model)
    assert t_q.dtype == np.uint8 and y.dtype == np.float32


def test_a_source_that_cannot_take_the_outputs_name_gets_an_identity():
    """The quantized tensor is a graph input, or another graph output: no rename, an Identity."""
    from_input = hand_graph(qdq("x", "y"), ["y"])
    assert keep_outputs_float(from_input) == 1
    assert [n.op_type for n in from_input.graph.node] == ["Identity"]
    np.testing.assert_allclose(checked(from_input)[0], np.linspace(-2, 2, 6).reshape(2, 3), atol=1e-6)
    both = hand_graph([relu_x(), *qdq("t", "y")], ["y", "t"])
    assert keep_outputs_float(both) == 1
    assert [n.op_type for n in both.graph.node] == ["Relu", "Identity"]
    y, t = checked(both)
    np.testing.assert_array_equal(y, t)


def test_a_tensor_a_subgraph_reads_is_left_alone_and_its_initializers_kept():
    then = helper.make_graph(
        [helper.make_node("Add", ["t_dq", "w"], ["o"], name="inner")],
        "then",
        [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2, 3])],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["t_dq"], ["o2"], name="inner2")],
        "else",
        [],
        [helper.make_tensor_value_info("o2", TensorProto.FLOAT, [2, 3])],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    nodes = [relu_x(), *qdq("t", "t_dq"), helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then)]
    nodes[-1].attribute.append(helper.make_attribute("else_branch", other))
    nodes += [helper.make_node("Relu", ["x"], ["u"], name="relu_u"), *qdq("u", "v")]
    model = hand_graph(nodes, ["y", "v"], [cond, w])
    assert keep_outputs_float(model) == 1  # v's pair; t_dq, read inside the If, keeps its pair
    assert {t.name for t in model.graph.initializer} >= {"w", "cond", "s", "z"}
    assert "t_Q" in {n.name for n in model.graph.node} and "u_Q" not in {n.name for n in model.graph.node}
    y, v = checked(model)
    np.testing.assert_allclose(v, np.maximum(np.linspace(-2, 2, 6).reshape(2, 3), 0), atol=1e-6)


def test_re_saving_with_external_data_does_not_keep_the_old_copy(tmp_path, monkeypatch):
    """ORT writes ``<out>.data`` for a model saved with external data; onnx appends to an existing
    data file, so the float-output rewrite must not leave the quantizer's copy behind."""
    import optkit.search.float_outputs as float_outputs

    src, out = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    rng = np.random.default_rng(0)
    inits = [  # weights above ORT's 1 KiB external-data threshold
        numpy_helper.from_array(rng.normal(size=(64, 3, 3, 3)).astype(np.float32), "w_conv"),
        numpy_helper.from_array(rng.normal(size=(64, 4)).astype(np.float32), "w_fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w_conv"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w_fc"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), src)
    (tmp_path / "fp32.onnx.data").write_bytes(b"")  # makes quantize_static_qdq ask ORT for external data
    saved = []
    real = float_outputs.save_onnx
    monkeypatch.setattr(float_outputs, "save_onnx", lambda *args: saved.append(args) or real(*args))
    quantize_static_qdq(src, out, batches(), "minmax", True, None, [])
    data = out.with_name(out.name + ".data")
    assert saved and data.exists()  # the rewrite re-saved the quantizer's external-data model
    stored = [  # (offset, length) of every externally stored tensor
        (int(e.get("offset", 0)), int(e["length"]))
        for t in onnx.load(str(out), load_external_data=False).graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
        for e in [{kv.key: kv.value for kv in t.external_data}]
    ]
    assert stored and min(offset for offset, _ in stored) == 0  # no stale copy ahead of the tensors
    assert sum(length for _, length in stored) >= 0.9 * data.stat().st_size
    x = batches(1)[0]["x"]
    assert np.isfinite(run(out, x)).all()
