"""Validation under the padding a server uses (:mod:`optkit.validation.padding`): per-batch and
fixed padding, the worse value of both, and padded positions left out of every comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from optkit.io_spec import ModelInfo
from optkit.recipe import AccuracyGate, load_recipe
from optkit.runners.base import Feeds, Runner
from optkit.runners.ort_runner import OrtRunner
from optkit.validation.accuracy import compare
from optkit.validation.data import ValidationSet
from optkit.validation.outputs import check_close
from optkit.validation.padding import reference_outputs, run_padded
from optkit.validation.validate_model import finite_reference, validate_model

LENGTHS = [2, 3, 8, 2, 2, 2]
INFO = ModelInfo(task="feature-extraction")


@pytest.fixture
def vset() -> ValidationSet:
    """Six samples padded to 8 tokens; batches of 2 hold 3, 8 and 2 real tokens at most; the batch
    of the long sample holds small ids (1), the others large ones (10)."""
    ids = np.zeros((6, 8), np.int64)
    mask = np.zeros((6, 8), np.int64)
    for row, n in enumerate(LENGTHS):
        ids[row, :n] = 1 if row in (2, 3) else 10
        mask[row, :n] = 1
    return ValidationSet(
        "text", "t.txt", {"input_ids": ids, "attention_mask": mask}, {"input_ids": 0, "attention_mask": 0}
    )


class Source(Runner):
    """A padding-invariant source: ``y = float(input_ids)`` (N, T)."""

    def __init__(self) -> None:
        super().__init__(1)
        self.lengths: list[int] = []

    def _activate(self) -> None:
        pass

    def _infer(self, feeds: Feeds) -> Feeds:
        self.lengths.append(feeds["input_ids"].shape[1])
        return {"y": feeds["input_ids"].astype(np.float32)}


def length_scaled(path: Path) -> Path:
    """``y = float(input_ids) * (1 + 0.01 * T)``, T = the batch's padded length: an artifact whose
    error grows with the padding it sees (as dynamic int8 scales do)."""
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Shape", ["input_ids"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["t"], axis=0),
        helper.make_node("Cast", ["t"], ["tf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["tf", "step"], ["scaled"]),
        helper.make_node("Add", ["scaled", "unit"], ["factor"]),
        helper.make_node("Mul", ["f", "factor"], ["y"]),
    ]
    inits = [
        helper.make_tensor("one", TensorProto.INT64, [], [1]),
        helper.make_tensor("step", TensorProto.FLOAT, [], [0.01]),
        helper.make_tensor("unit", TensorProto.FLOAT, [], [1.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence"])],
        inits,
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_per_batch_padding_cuts_each_batch_to_its_longest_example(vset):
    batches = vset.batches(2, "per-batch")
    assert [b["input_ids"].shape for b in batches] == [(2, 3), (2, 8), (2, 2)]
    assert [b["input_ids"].shape for b in vset.batches(2)] == [(2, 8)] * 3  # fixed: the set's length
    vset.length_range = (4, None)
    assert [b["input_ids"].shape[1] for b in vset.batches(2, "per-batch")] == [4, 8, 4]  # the model's minimum


def test_per_batch_outputs_are_padded_back_to_the_sets_length(vset):
    source = Source()
    out = run_padded(source, vset, 2, "per-batch")
    assert source.lengths == [3, 8, 2] and out["y"].shape == (6, 8)
    np.testing.assert_array_equal(out["y"], vset.feeds["input_ids"].astype(np.float32))


@pytest.mark.parametrize(("mode", "status"), [("per-batch", "passed"), ("fixed", "failed"), ("both", "failed")])
def test_the_padding_changes_what_is_compared_and_both_counts_the_worse(tmp_path, vset, mode, status):
    reference = reference_outputs(Source(), vset, 2, mode)
    gate = AccuracyGate(metric="max_abs_error", max=0.4)
    with OrtRunner(length_scaled(tmp_path / "m.onnx"), 1) as runner:
        checked = validate_model(runner, reference, vset, INFO, [gate], 2)
    assert checked.gates[0].status == status
    if mode == "both":
        per_batch, fixed = checked.by_padding["per-batch"], checked.by_padding["fixed"]
        assert per_batch["max_abs_error"] < 0.4 < fixed["max_abs_error"]
        assert checked.accuracy.metrics["max_abs_error"] == fixed["max_abs_error"]  # the worse one


def test_without_an_attention_mask_per_batch_is_the_fixed_length(vset):
    ids = ValidationSet("npz", "x.npz", {"input_ids": vset.feeds["input_ids"]}, {"input_ids": 0})
    reference = reference_outputs(Source(), ids, 2, "both")
    assert reference.paddings == ["fixed"] and "per-batch padding is the fixed length" in reference.note


def test_garbage_at_padded_positions_is_ignored_by_every_metric(vset):
    mask = vset.feeds["attention_mask"].astype(bool)
    rng = np.random.default_rng(0)
    src3 = rng.normal(size=(6, 8, 4)).astype(np.float32)
    art3 = np.where(mask[..., None], src3, np.nan).astype(np.float32)
    src2 = rng.normal(size=(6, 8)).astype(np.float32)
    art2 = np.where(mask, src2, 1e6).astype(np.float32)  # a huge start logit at a padded position
    report = compare({"hidden": src3, "start_logits": src2}, {"hidden": art3, "start_logits": art2}, vset, INFO)
    assert report.metrics["max_abs_error"] == 0.0 and report.metrics["nonfinite_outputs"] == 0.0
    assert report.metrics["cosine_min"] == pytest.approx(1.0) and report.metrics["top1_agreement"] == 1.0
    assert report.metrics["pooled_cosine_min"] == pytest.approx(1.0)
    # the export check and the source's finiteness check skip them too
    assert check_close({"hidden": src3}, {"hidden": art3}, 1e-6, 0, ValueError, "", vset.feeds["attention_mask"]) == 0
    finite_reference({"hidden": art3}, vset.feeds["attention_mask"])


def test_garbage_at_real_positions_is_still_caught(vset):
    src = np.ones((6, 8), np.float32)
    art = src.copy()
    art[2, 7] = 5.0  # sample 2 has 8 real tokens: position 7 is real
    report = compare({"start_logits": src}, {"start_logits": art}, vset, INFO)
    assert report.metrics["max_abs_error"] == 4.0


def test_the_recipe_padding_defaults_to_both_and_refuses_other_values():
    assert load_recipe("fp32").validation.padding == "both"
    with pytest.raises(Exception, match="per-batch"):
        load_recipe("fp32", {"validation.padding": "longest"})
