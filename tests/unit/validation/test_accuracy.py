"""Accuracy metrics and gates on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from optkit.io_spec import ModelInfo
from optkit.recipe import AccuracyGate, SpeedGate
from optkit.validation.accuracy import compare
from optkit.validation.data import ValidationSet
from optkit.validation.gates import evaluate_accuracy, evaluate_speed
from optkit.validation.speed import LatencyStats, ShapeResult, SpeedReport
from optkit.validation.stats import speedup_interval

LABELS = ["O", "B-PER", "I-PER"]


def _vset(mask, gold=None, starts=None):
    return ValidationSet("conll", "t", {"attention_mask": mask}, {"attention_mask": 0}, gold, starts)


def test_identical_outputs_are_perfect():
    logits = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
    report = compare({"logits": logits}, {"logits": logits.copy()}, _vset(mask), ModelInfo(task="token-classification"))
    assert report.metrics["max_abs_error"] == 0 and report.metrics["tag_agreement"] == 1.0
    assert report.metrics["cosine_min"] == pytest.approx(1.0)


def test_padding_positions_are_ignored():
    src = np.zeros((1, 3, 3), np.float32)
    src[0, :, 0] = 1.0
    art = src.copy()
    art[0, 2] = [0, 5, 0]  # only the padded token differs
    report = compare({"l": src}, {"l": art}, _vset(np.array([[1, 1, 0]])), ModelInfo(task="token-classification"))
    assert report.metrics["tag_agreement"] == 1.0 and report.metrics["max_abs_error"] == 0


def test_disagreement_and_nonfinite_are_counted():
    src = np.zeros((1, 4, 3), np.float32)
    src[0, :, 0] = 1.0
    art = src.copy()
    art[0, 1] = [0, 2, 0]
    art[0, 3, 2] = np.nan
    report = compare({"l": src}, {"l": art}, _vset(np.ones((1, 4), int)), ModelInfo(task="token-classification"))
    assert report.metrics["tag_agreement"] == 0.5  # the changed token and the NaN token disagree
    assert report.metrics["nonfinite_outputs"] == 1
    assert report.metrics["max_abs_error"] == np.inf


def test_entity_f1_drop_in_points():
    # 1 sentence, 2 words; gold: B-PER O. Source predicts right, artifact predicts O O.
    src = np.zeros((1, 4, 3), np.float32)
    src[0, 1, 1] = 5  # word 0 → B-PER
    src[0, 2, 0] = 5  # word 1 → O
    art = src.copy()
    art[0, 1] = [5, 0, 0]
    vset = _vset(np.ones((1, 4), int), gold=[["B-PER", "O"]], starts=[[1, 2]])
    report = compare({"l": src}, {"l": art}, vset, ModelInfo(task="token-classification", labels=LABELS))
    assert report.metrics["entity_f1_source"] == pytest.approx(100.0)
    assert report.metrics["entity_f1_artifact"] == pytest.approx(0.0)
    assert report.metrics["entity_f1_drop"] == pytest.approx(100.0)


def test_entity_f1_unavailable_without_gold():
    logits = np.ones((1, 2, 3), np.float32)
    report = compare(
        {"l": logits}, {"l": logits}, _vset(np.ones((1, 2), int)), ModelInfo(task="token-classification", labels=LABELS)
    )
    assert "entity_f1_drop" not in report.metrics and "gold" in report.unavailable["entity_f1_drop"]
    gates = evaluate_accuracy([AccuracyGate(metric="entity_f1_drop", max=1.0)], report)
    assert gates[0].status == "skipped" and "gold" in gates[0].reason


def test_accuracy_gates_pass_fail():
    logits = np.eye(3, dtype=np.float32)[None]
    report = compare(
        {"l": logits}, {"l": logits + 0.01}, _vset(np.ones((1, 3), int)), ModelInfo(task="token-classification")
    )
    results = evaluate_accuracy(
        [AccuracyGate(metric="max_abs_error", max=0.001), AccuracyGate(metric="tag_agreement", min=0.99)], report
    )
    assert [r.status for r in results] == ["failed", "passed"]
    assert results[0].value == pytest.approx(0.01, rel=1e-3)


def _speed(src_ms, art_ms, rounds=5):
    """A report at b1 s128 whose rounds are all ``src_ms`` / ``art_ms`` (±1 %, so the interval is
    tight around the ratio)."""
    stats = lambda ms: LatencyStats(ms, ms, ms, ms, 1000 / ms, 3)  # noqa: E731
    wobble = [0.99, 1.0, 1.01]
    src = [[src_ms * w / 1e3 for w in wobble] for _ in range(rounds)]
    art = [[art_ms * w / 1e3 for w in wobble] for _ in range(rounds)]
    estimate = speedup_interval(src, art) if rounds >= 2 else None
    report = SpeedReport(2, 1, 3)
    report.shapes.append(
        ShapeResult("cpu", 1, 128, stats(src_ms), stats(art_ms), [src_ms] * rounds, [art_ms] * rounds, estimate)
    )
    return report


def test_speed_gate_uses_p50_ratio():
    report = _speed(40.0, 10.0)
    [result] = evaluate_speed([SpeedGate(batch_size=1, min=3.0)], report)
    assert result.status == "passed" and result.value == pytest.approx(4.0)
    assert result.ci_low is not None and result.ci_high is not None and 3.0 <= result.ci_low <= 4.0 <= result.ci_high
    [result] = evaluate_speed([SpeedGate(batch_size=1, min=5.0)], report)
    assert result.status == "failed"


def test_speed_gate_without_an_interval_is_inconclusive_not_passed():
    """One round gives no interval over rounds: a 4x point figure alone does not pass a 3x gate."""
    [result] = evaluate_speed([SpeedGate(batch_size=1, min=3.0)], _speed(40.0, 10.0, rounds=1))
    assert result.status == "inconclusive" and "no confidence interval" in result.reason


def test_speed_gate_on_absent_device_is_skipped_not_faked():
    report = _speed(40.0, 10.0)
    report.skipped_devices["cuda"] = "no CUDA here"
    [result] = evaluate_speed([SpeedGate(batch_size=1, min=1.0, device="cuda")], report)
    assert result.status == "skipped" and result.value is None and "CUDA" in result.reason
    assert result.reason == "no CUDA here" and result.kind == "speed" and result.name == "speedup b1 cuda >= 1"


def test_speed_gate_on_unbenchmarked_shape_fails():
    [result] = evaluate_speed([SpeedGate(batch_size=32, min=1.0)], _speed(4.0, 1.0))
    assert result.status == "failed" and "batch_sizes" in result.reason


def test_cosine_of_rows_that_are_zero_on_both_sides_is_one():
    """An exact export of a ReLU model gives all-zero rows on both sides: identical, cosine 1."""
    from optkit.validation.accuracy import row_cosine

    s = np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0], [1.0, 0.0]])
    a = np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 1.0], [np.nan, 0.0]])
    assert row_cosine(s, a).tolist() == [1.0, pytest.approx(1.0), 0.0, 0.0]


def test_outputs_are_matched_by_name_and_every_failure_is_named():
    from optkit.errors import ExportError
    from optkit.validation.outputs import check_close, match_outputs

    src = {"logits": np.zeros((2, 3)), "hidden": np.ones((2, 4)), "output_2": np.ones(2)}
    art = {"hidden": np.ones((2, 4)), "logits": np.zeros((2, 3)), "18": np.ones(2)}
    assert match_outputs(src, art, ExportError) == [("logits", "logits"), ("hidden", "hidden"), ("output_2", "18")]
    with pytest.raises(ExportError, match="no output name is shared"):
        match_outputs({"a": np.ones(1)}, {"b": np.ones(1)}, ExportError)
    with pytest.raises(ExportError, match="outputs differ"):
        match_outputs({"a": np.ones(1), "b": np.ones(1)}, {"a": np.ones(1)}, ExportError)
    bad = {"hidden": np.ones((2, 4)) * 2, "logits": np.ones((2, 3)), "18": np.ones(2)}
    with pytest.raises(ExportError) as err:
        check_close(src, bad, 1e-4, 1e-4, ExportError, "fix")
    assert "'logits' max |onnx - source| = 1" in err.value.message and "'hidden'" in err.value.message
    assert check_close(src, art, 1e-4, 1e-4, ExportError, "fix") == 0.0
