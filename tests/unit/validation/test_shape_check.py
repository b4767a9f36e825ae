"""Validation at shapes other than the export's (:mod:`optkit.validation.shape_check`), on tiny
ONNX graphs that bake a batch size or a sequence length, beside a stand-in source runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from optkit.errors import ExportError, PassError
from optkit.io_spec import ModelInfo, TensorSpec
from optkit.runners.base import Feeds, Runner
from optkit.runners.ort_runner import OrtRunner
from optkit.validation.data import ValidationSet
from optkit.validation.shape_check import check_export_shapes, check_final_shapes, plan_sizes, probe_source


def _save(path: Path, nodes, inits, out_shape) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        inits,
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def mean_model(path: Path, baked_length: int | None = None) -> Path:
    """``y = mean of input_ids over axis 1`` (N, 1); with ``baked_length`` the sum is divided by that
    constant, as a trace that took the example's length as a Python int does."""
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["f", "axes"], ["s"], keepdims=1),
    ]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [1], [1])]
    if baked_length is None:
        nodes.append(helper.make_node("ReduceMean", ["f"], ["y"], axes=[1], keepdims=1))
        nodes = [nodes[0], nodes[2]]
    else:
        inits.append(helper.make_tensor("n", TensorProto.FLOAT, [1], [float(baked_length)]))
        nodes.append(helper.make_node("Div", ["s", "n"], ["y"]))
    return _save(path, nodes, inits, ["batch", 1])


def batch_baked_model(path: Path, batch: int, length: int) -> Path:
    """``y = float(input_ids)`` through a Reshape to the constant (batch, length)."""
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["f", "shape"], ["y"]),
    ]
    inits = [helper.make_tensor("shape", TensorProto.INT64, [2], [batch, length])]
    return _save(path, nodes, inits, ["batch", "sequence"])


class MeanSource(Runner):
    """The source: the mean of the ids over axis 1, at any shape."""

    def __init__(self, refuse_batch: int | None = None) -> None:
        super().__init__(1)
        self.refuse_batch, self.shapes = refuse_batch, []

    def _activate(self) -> None:
        pass

    def _infer(self, feeds: Feeds) -> Feeds:
        ids = feeds["input_ids"]
        self.shapes.append(ids.shape)
        if ids.shape[0] == self.refuse_batch:
            raise RuntimeError(f"this model takes no batch of {self.refuse_batch}")
        return {"y": ids.astype(np.float32).mean(1, keepdims=True)}


class IdentitySource(MeanSource):
    def _infer(self, feeds: Feeds) -> Feeds:
        return {"y": feeds["input_ids"].astype(np.float32)}


@pytest.fixture
def vset() -> ValidationSet:
    ids = np.random.default_rng(0).integers(1, 50, size=(6, 6), dtype=np.int64)
    return ValidationSet("npz", "ids.npz", {"input_ids": ids}, {"input_ids": 0})


def test_a_dynamic_export_passes_at_two_other_batch_sizes_and_lengths(tmp_path, vset):
    source = MeanSource()
    check = probe_source(source, vset, ModelInfo(), vset.batches(2)[0])
    check_export_shapes(mean_model(tmp_path / "m.onnx"), check, vset, 1e-5, 1e-4, 1)
    details = check.details()
    assert details["batch_sizes"] == [1, 3] and details["sequence_lengths"] == [3, 5]
    assert details["export_shape"] == {"batch_size": 2, "sequence_length": 6}
    assert sorted(source.shapes) == [(1, 6), (2, 3), (2, 5), (3, 6)]  # a few samples per shape


def test_a_baked_sequence_length_is_named_when_outputs_diverge_only_elsewhere(tmp_path, vset):
    model = mean_model(tmp_path / "m.onnx", baked_length=6)
    check = probe_source(MeanSource(), vset, ModelInfo(), vset.batches(2)[0])
    with pytest.raises(ExportError) as caught:
        check_export_shapes(model, check, vset, 1e-5, 1e-4, 1)
    message = caught.value.message
    assert "sequence 6 baked into the graph" in message
    assert "at sequence length 3 (axis 1 of 'input_ids'; the export's: 6)" in message
    assert "'y' max |onnx - source|" in message
    assert "batch size" not in message  # the batch axis works: only the length is named


def test_a_baked_batch_size_is_named_when_onnx_runtime_refuses_it(tmp_path, vset):
    model = batch_baked_model(tmp_path / "m.onnx", 2, 6)
    check = probe_source(IdentitySource(), vset, ModelInfo(), vset.batches(2)[0])
    with pytest.raises(ExportError) as caught:
        check_export_shapes(model, check, vset, 1e-5, 1e-4, 1)
    message = caught.value.message
    assert (
        "batch 2" in message
        and "at batch size 1 (axis 0 of 'input_ids'; the export's: 2) ONNX Runtime fails" in message
    )


def test_the_final_model_must_keep_the_sources_output_shapes(tmp_path, vset):
    check = probe_source(IdentitySource(), vset, ModelInfo(), vset.batches(2)[0])
    with (
        OrtRunner(batch_baked_model(tmp_path / "m.onnx", 2, 6), 1) as runner,
        pytest.raises(PassError, match="batch size 1"),
    ):
        check_final_shapes(runner, check, vset)
    dynamic = _save(
        tmp_path / "d.onnx",
        [helper.make_node("Cast", ["input_ids"], ["y"], to=TensorProto.FLOAT)],
        [],
        ["batch", "sequence"],
    )
    with OrtRunner(dynamic, 1) as runner:
        check_final_shapes(runner, check, vset)  # runs everywhere with the source's shapes: no error


def test_a_shape_the_source_refuses_is_noted_not_failed(tmp_path, vset):
    check = probe_source(MeanSource(refuse_batch=1), vset, ModelInfo(), vset.batches(2)[0])
    check_export_shapes(mean_model(tmp_path / "m.onnx"), check, vset, 1e-5, 1e-4, 1)
    assert check.details()["batch_sizes"] == [3]
    assert any("the source model refuses batch 1" in note for note in check.notes)


def test_axes_the_model_fixes_are_not_varied(vset):
    fixed_batch = ModelInfo(input_specs={"input_ids": TensorSpec("input_ids", "int64", (2, "sequence"))})
    batches, lengths, notes = plan_sizes(vset, fixed_batch, 2)
    assert batches == [] and lengths == [3, 5] and "the model fixes it at 2" in notes[0]
    vset.fixed_length = 6
    batches, lengths, notes = plan_sizes(vset, ModelInfo(), 2)
    assert batches == [1, 3] and lengths == [] and "sequence length not varied" in notes[0]
    vset.fixed_length, vset.length_range = None, (2, 4)
    assert plan_sizes(vset, ModelInfo(), 1)[:2] == ([3, 4], [3, 4])  # T - 1 = 5 is clamped into 2..4
    images = ValidationSet("npz", "x.npz", {"x": np.zeros((4, 3), np.float32)})
    assert plan_sizes(images, ModelInfo(), 2)[:2] == ([1, 3], [])  # no token inputs: no length axis
