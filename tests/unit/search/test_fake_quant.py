"""fake_quant (optkit.search.fake_quant) against ONNX Runtime's own quantized output: the weights
``quantize_dynamic`` stores, dequantized, and ``DynamicQuantizeLinear`` run in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from optkit.search.fake_quant import fake_quant_activation, fake_quant_weight

OPSET = [helper.make_opsetid("", 17)]


def _weight() -> np.ndarray:
    """(16, 8): columns of very different ranges, one all-positive, one all-zero, one outlier."""
    rng = np.random.default_rng(1)
    w = (rng.normal(size=(16, 8)) * np.linspace(0.1, 3.0, 8)).astype(np.float32)
    w[:, 2] = np.abs(w[:, 2])
    w[:, 5] = 0.0
    w[0, 0] = 5.0
    return w


def _ort_dequantized_weight(tmp_path, w, weight_type, per_channel, reduce_range) -> np.ndarray:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, w.shape[1]])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=OPSET), str(tmp_path / "m.onnx"))
    quantize_dynamic(
        str(tmp_path / "m.onnx"),
        str(tmp_path / "q.onnx"),
        per_channel=per_channel,
        reduce_range=reduce_range,
        weight_type={"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[weight_type],
    )
    model = onnx.load(str(tmp_path / "q.onnx"))
    (node,) = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    q, zero = inits[node.input[1]], inits[node.input[3]]
    scale = inits[node.input[1].removesuffix("_quantized") + "_scale"]
    assert q.dtype == {"qint8": np.int8, "quint8": np.uint8}[weight_type]
    assert scale.size == (w.shape[1] if per_channel else 1)  # per output channel: MatMul's axis 1
    return ((q.astype(np.float32) - zero.astype(np.float32)) * scale.astype(np.float32)).astype(np.float32)


@pytest.mark.parametrize("weight_type", ["qint8", "quint8"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("reduce_range", [False, True])
def test_weights_are_what_quantize_dynamic_stores(tmp_path, weight_type, per_channel, reduce_range):
    w = _weight()
    stored = _ort_dequantized_weight(tmp_path, w, weight_type, per_channel, reduce_range)
    fake = fake_quant_weight(w, weight_type, per_channel, reduce_range)
    assert fake.dtype == np.float64 and fake.shape == w.shape
    np.testing.assert_array_max_ulp(fake.astype(np.float32), stored, maxulp=1)
    assert not np.array_equal(stored, w)  # it did quantize


def _ort_dynamic_quantize(x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    graph = helper.make_graph(
        [
            helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "scale", "zero"]),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))],
    )
    model = helper.make_model(graph, opset_imports=OPSET)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


_rng = np.random.default_rng(2)
ACTIVATIONS = {
    "rounding ties": np.linspace(-1.0, 3.0, 101, dtype=np.float32),  # x / scale lands on k + 0.5
    "normal": _rng.normal(size=(4, 33)).astype(np.float32),
    "all positive": np.abs(_rng.normal(size=50)).astype(np.float32),
    "all negative": -np.abs(_rng.normal(size=50)).astype(np.float32),
    "all zero": np.zeros(5, np.float32),
    "one value": np.array([0.3], np.float32),
    "wide range": (_rng.normal(size=200) * 1e3).astype(np.float32),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activations_are_what_dynamic_quantize_linear_computes(name):
    x = ACTIVATIONS[name]
    fake = fake_quant_activation(x)
    assert fake.dtype == np.float64 and fake.shape == x.shape
    np.testing.assert_array_max_ulp(fake.astype(np.float32), _ort_dynamic_quantize(x), maxulp=1)
