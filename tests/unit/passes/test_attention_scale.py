"""Unmasked attention scaled by ``Mul`` (transformers' eager ViT / wav2vec2) rewritten into the ``Div``
form ORT fuses: on ``onnx.helper`` graphs (which ``Mul`` nodes are left alone) and on the tiny ViT,
DeiT and wav2vec2 exports, whose fused Attention count goes from 0 to 2 with the same outputs."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tests import hf_task_models as models

from optkit.exporters.torch_exporter import export
from optkit.pass_context import PassContext
from optkit.passes import fuse
from optkit.passes.attention_scale import divide_attention_scale
from optkit.recipe import ExportConfig, FusePass
from optkit.runners.ort_runner import OrtRunner
from optkit.sources import torch_source

HEAD = 16


def _scores_graph(scale: float | list[float], constant_first: bool = False, op: str = "MatMul") -> onnx.ModelProto:
    """``softmax(op(q, k) * scale)`` over q, k of shape (1, 2, 4, 4)."""
    value = np.array(scale, np.float32)
    mul_inputs = ["c", "s"] if constant_first else ["s", "c"]
    nodes = [
        helper.make_node(op, ["q", "k"], ["s"]),
        helper.make_node("Mul", mul_inputs, ["m"]),
        helper.make_node("Softmax", ["m"], ["y"], axis=-1),
    ]
    spec = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 4]) for n in ("q", "k")]
    graph = helper.make_graph(
        nodes,
        "g",
        spec,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
        [numpy_helper.from_array(value, "c")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


@pytest.mark.parametrize("constant_first", [False, True])
def test_standard_scale_becomes_div_with_same_output(constant_first):
    model = _scores_graph(1 / math.sqrt(HEAD), constant_first)
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((1, 2, 4, 4)).astype(np.float32) for n in ("q", "k")}
    before = _run(model, feeds)
    assert divide_attention_scale(model, HEAD) == 1
    onnx.checker.check_model(model)
    mul = model.graph.node[1]
    assert mul.op_type == "Div" and mul.input[0] == "s"
    divisor = next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == mul.input[1])
    assert divisor == pytest.approx(4.0)
    np.testing.assert_allclose(_run(model, feeds), before, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "scale, head, op",
    [
        (0.5, HEAD, "MatMul"),  # not 1/sqrt(head size): ORT's Attention would apply the wrong scale
        (1 / math.sqrt(HEAD), 0, "MatMul"),  # head size unknown
        ([0.25, 0.25], HEAD, "MatMul"),  # not a scalar
        (1 / math.sqrt(HEAD), HEAD, "Add"),  # not the product of q and k
    ],
)
def test_other_mul_nodes_are_left_alone(scale, head, op):
    model = _scores_graph(scale, op=op)
    assert divide_attention_scale(model, head) == 0
    assert [n.op_type for n in model.graph.node] == [op, "Mul", "Softmax"]


def test_constant_node_scale_is_read():
    model = _scores_graph(1 / math.sqrt(HEAD))
    value = model.graph.initializer.pop()
    model.graph.node.insert(0, helper.make_node("Constant", [], ["c"], value=value))
    assert divide_attention_scale(model, HEAD) == 1
    assert model.graph.node[2].op_type == "Div"


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, tuple]:
    """The tiny ViT, DeiT and wav2vec2 exports with a batch of inputs and the source's logits."""
    root = tmp_path_factory.mktemp("vision-fuse")
    folders = {
        "vit": models.save_vit(root / "vit"),
        "deit": models.save_image_classifier(root / "deit", "deit"),
        "wav2vec2": models.save_wav2vec2(root / "wav2vec2"),
    }
    rng = np.random.default_rng(0)
    out = {}
    for name, folder in folders.items():
        source = torch_source.load(folder, root / f"w-{name}")
        (input_name,) = source.info.input_names
        shape = (2, 3, 32, 32) if name != "wav2vec2" else (2, models.SAMPLES)
        feeds = {input_name: rng.standard_normal(shape).astype(np.float32)}
        path = export(source, feeds, ExportConfig(), root / f"{name}.onnx").model_path
        out[name] = (source, path, feeds, source.runner(1).infer(feeds)["logits"], root)
    return out


@pytest.mark.parametrize("name, ort_type", [("vit", "vit"), ("deit", "vit"), ("wav2vec2", "bert")])
def test_vision_and_audio_encoders_get_attention_fusions(exports, name, ort_type):
    source, path, feeds, reference, root = exports[name]
    outcome = fuse.run(path, FusePass(type="fuse"), PassContext(root, source.info, 4))
    assert outcome.details["model_type"] == ort_type and outcome.details["num_heads"] == 2
    assert outcome.details["scaled_attention_rewrites"] == 2
    assert outcome.details["attention_fusions"] == 2 and not outcome.warnings  # 0 before the rewrite
    np.testing.assert_allclose(OrtRunner(outcome.model_path, 1).infer(feeds)["logits"], reference, atol=1e-4)


def test_swin_warning_names_the_missing_fusion(tmp_path):
    folder = models.save_image_classifier(tmp_path / "swin", "swin")
    source = torch_source.load(folder, tmp_path / "w")
    feeds = {"pixel_values": np.zeros((1, 3, 32, 32), np.float32)}
    path = export(source, feeds, ExportConfig(), tmp_path / "swin.onnx").model_path
    outcome = fuse.run(path, FusePass(type="fuse"), PassContext(tmp_path, source.info, 4))
    assert outcome.details["attention_fusions"] == 0
    assert "relative position bias" in outcome.warnings[0]
