"""Each pass on the tiny BERT export: setup, run, assert on the produced model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from optkit.exporters.torch_exporter import export
from optkit.onnx_io import op_counts
from optkit.passes import fp16, fuse, quantize_dynamic, simplify
from optkit.passes.base import PassContext
from optkit.recipe import ExportConfig, Fp16Pass, FusePass, QuantizeDynamicPass, SimplifyPass
from optkit.runners.ort_runner import OrtRunner
from optkit.sources import torch_source

FEEDS = {
    "input_ids": np.array([[2, 7, 8, 9, 3], [2, 10, 11, 3, 0]], np.int64),
    "attention_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], np.int64),
    "token_type_ids": np.zeros((2, 5), np.int64),
}


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    work = tmp_path_factory.mktemp("passes")
    source = torch_source.load(tiny["pt"], work)
    outcome = export(source, FEEDS, ExportConfig(), work / "export.onnx")
    reference = source.runner(2).infer(FEEDS)["logits"]
    return source, outcome.model_path, reference, work


def _logits(path, feeds=FEEDS):
    return OrtRunner(path, 2).infer(feeds)["logits"]


def test_export_matches_source_with_dynamic_axes(exported):
    source, path, reference, _ = exported
    model = onnx.load(str(path))
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]
    np.testing.assert_allclose(_logits(path), reference, atol=1e-4)
    longer = {k: np.tile(v, (3, 3)) for k, v in FEEDS.items()}  # another batch and sequence length
    assert _logits(path, longer).shape[:2] == (6, 15)


def test_simplify_keeps_outputs(exported):
    source, path, reference, work = exported
    out = simplify.run(
        path, SimplifyPass(type="simplify", perform_optimization=False), PassContext(work, source.info, 1)
    )
    assert out.skipped is None and out.details["nodes_after"] <= out.details["nodes_before"]
    np.testing.assert_allclose(_logits(out.model_path), reference, atol=1e-4)


def test_simplify_failure_keeps_model(exported, tmp_path, monkeypatch):
    import onnxsim

    source, path, _, _ = exported

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported op Foo")

    monkeypatch.setattr(onnxsim, "simplify", broken)
    out = simplify.run(path, SimplifyPass(type="simplify"), PassContext(tmp_path, source.info, 1))
    assert out.model_path == path and out.skipped and "unsupported op Foo" in out.skipped


def test_fuse_records_attention_fusions(exported):
    source, path, reference, work = exported
    out = fuse.run(path, FusePass(type="fuse"), PassContext(work, source.info, 2))
    assert out.details["fusions"].get("Attention") == 2, out.details  # 2 layers
    assert out.details["attention_fusions"] == 2 and not out.warnings
    np.testing.assert_allclose(_logits(out.model_path), reference, atol=1e-4)


def test_fuse_warns_when_no_attention_is_fused(exported):
    source, path, _, work = exported
    config = FusePass(type="fuse", num_heads=3, hidden_size=30)  # wrong shape: attention cannot match
    out = fuse.run(path, config, PassContext(work, source.info, 3))
    assert out.details["attention_fusions"] == 0 and any("0 Attention" in w for w in out.warnings)


def test_fuse_require_attention_raises(exported):
    from optkit.errors import PassError

    source, path, _, work = exported
    with pytest.raises(PassError, match="0 Attention"):
        fuse.run(
            path,
            FusePass(type="fuse", num_heads=3, hidden_size=30, require_attention=True),
            PassContext(work, source.info, 4),
        )


@pytest.mark.parametrize("per_channel", [True, False])
def test_quantize_dynamic_on_fused_model(exported, per_channel):
    source, path, reference, work = exported
    fused = fuse.run(path, FusePass(type="fuse"), PassContext(work, source.info, 5)).model_path
    config = QuantizeDynamicPass(type="quantize-dynamic", per_channel=per_channel)
    out = quantize_dynamic.run(fused, config, PassContext(work, source.info, 6))
    assert out.details["quantized_ops"], out.details
    assert out.model_path.stat().st_size < fused.stat().st_size
    assert np.isfinite(_logits(out.model_path)).all()


def test_quantize_nodes_to_exclude_keeps_node_float(exported):
    source, path, _, work = exported
    model = onnx.load(str(path))
    matmuls = [n.name for n in model.graph.node if n.op_type == "MatMul"]
    config = QuantizeDynamicPass(type="quantize-dynamic", op_types=["MatMul"], nodes_to_exclude=matmuls)
    out = quantize_dynamic.run(path, config, PassContext(work, source.info, 7))
    assert op_counts(onnx.load(str(out.model_path))).get("MatMul", 0) == len(matmuls)
    assert any("no node was quantized" in w for w in out.warnings)


def test_fp16_keeps_io_types_and_accuracy(exported):
    source, path, reference, work = exported
    out = fp16.run(path, Fp16Pass(type="fp16"), PassContext(work, source.info, 8))
    model = onnx.load(str(out.model_path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    np.testing.assert_allclose(_logits(out.model_path), reference, atol=2e-2)
