"""A tiny random-weight ONNX CNN built with ``onnx.helper`` (no framework): Conv, depthwise Conv,
Gemm, for the static int8 search and its end-to-end ``cnn-int8`` conversion."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_cnn() -> onnx.ModelProto:
    """x (N, 3, 8, 8) -> Conv 3→8 (3×3, pad 1) -> Relu -> depthwise Conv (group 8) -> Relu ->
    GlobalAveragePool -> Flatten -> Gemm 8→4 -> y (N, 4); random weights, seed 0."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w_conv"),
        numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "b_conv"),
        numpy_helper.from_array(rng.normal(size=(8, 1, 3, 3)).astype(np.float32), "w_dw"),
        numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "b_dw"),
        numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "w_fc"),
        numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "b_fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w_conv", "b_conv"], ["c1"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w_dw", "b_dw"], ["c2"], name="dw", pads=[1, 1, 1, 1], group=8),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w_fc", "b_fc"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
