"""A fidelity gate that cannot be evaluated for the model's task is replaced by the task's own (or
is a recipe error), never silently skipped: the table, the resolution, the gate's reason, and a
transformer-int8 conversion of a tiny sequence classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optkit.errors import RecipeError
from optkit.io_spec import ModelInfo
from optkit.recipe import AccuracyGate
from optkit.validation.accuracy import compare
from optkit.validation.data import ValidationSet
from optkit.validation.gates import evaluate_accuracy
from optkit.validation.task_gates import TASK_FIDELITY, available_metrics, resolve_gates

POOLED = AccuracyGate(metric="pooled_cosine_min", min=0.99)
NONFINITE = AccuracyGate(metric="nonfinite_outputs", max=0)
CLS = ModelInfo(task="sequence-classification")


def _classifier_data(n: int = 6) -> tuple[dict, ValidationSet]:
    """Logits (n, 3) of a sequence classifier and token inputs with a mask (no tokens to pool)."""
    logits = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    mask = np.ones((n, 5), np.int64)
    return {"logits": logits}, ValidationSet("text", "t.txt", {"input_ids": mask, "attention_mask": mask})


def test_every_task_gate_is_a_fidelity_metric_the_comparison_computes():
    from optkit.recipe import FIDELITY_METRICS

    assert {g.metric for g in TASK_FIDELITY.values()} <= FIDELITY_METRICS
    assert TASK_FIDELITY["sequence-classification"].name == "label_agreement >= 0.99"
    assert TASK_FIDELITY["regression"].op == "<="


def test_pooled_cosine_on_a_classifier_is_replaced_by_label_agreement():
    ref, vset = _classifier_data()
    resolved = resolve_gates([NONFINITE, POOLED], available_metrics(ref, vset, CLS), CLS.task)
    assert [(g.metric, g.min) for g in resolved.gates] == [("nonfinite_outputs", None), ("label_agreement", 0.99)]
    [warning] = resolved.warnings
    assert warning.startswith("gate pooled_cosine_min >= 0.99 cannot be evaluated for task sequence-classification")
    assert warning.endswith("replaced by label_agreement >= 0.99")


def test_the_substituted_gate_is_evaluated_and_names_what_it_replaces():
    ref, vset = _classifier_data()
    art = {"logits": ref["logits"].copy()}
    art["logits"][0] = -art["logits"][0]  # one of six samples changes its label
    resolved = resolve_gates([NONFINITE, POOLED], available_metrics(ref, vset, CLS), CLS.task)
    results = evaluate_accuracy(resolved.gates, compare(ref, art, vset, CLS))
    sub = results[1]
    assert sub.name == "label_agreement >= 0.99" and sub.status == "failed"
    assert sub.value == pytest.approx(5 / 6)
    assert "replaces pooled_cosine_min >= 0.99" in sub.reason and "sequence-classification" in sub.reason


def test_available_gates_are_left_alone():
    ref, vset = _classifier_data()
    gates = [NONFINITE, AccuracyGate(metric="label_agreement", min=0.95)]
    resolved = resolve_gates(gates, available_metrics(ref, vset, CLS), CLS.task)
    assert resolved.gates == gates and resolved.warnings == []


def test_a_gate_whose_task_metric_the_recipe_already_gates_stays_skipped():
    """ner-int8 on data without gold tags: entity F1 is skipped, tag agreement (already gated) holds."""
    logits = np.random.default_rng(1).normal(size=(4, 5, 3)).astype(np.float32)
    mask = np.ones((4, 5), np.int64)
    vset = ValidationSet("text", "t.txt", {"input_ids": mask, "attention_mask": mask})
    info = ModelInfo(task="token-classification", labels=["O", "B-X", "I-X"])
    gates = [AccuracyGate(metric="tag_agreement", min=0.99), AccuracyGate(metric="entity_f1_drop", max=1.0)]
    resolved = resolve_gates(gates, available_metrics({"l": logits}, vset, info), info.task)
    assert resolved.gates == gates and resolved.warnings == []


def test_no_gate_of_the_task_is_a_recipe_error():
    """A task optkit does not know, whose only fidelity gate cannot be computed: exit 2 before any work."""
    ref, vset = _classifier_data()
    info = ModelInfo(task=None)
    with pytest.raises(RecipeError) as exc:
        resolve_gates([NONFINITE, POOLED], available_metrics(ref, vset, info), info.task, "recipe transformer-int8")
    assert exc.value.exit_code == 2
    assert "recipe transformer-int8: no fidelity gate can be evaluated" in exc.value.message
    assert "task unknown" in exc.value.message and "no gate of its own" in exc.value.message
    assert "label_agreement" in exc.value.hint  # what the data does allow


def test_a_task_gate_that_cannot_be_evaluated_either_is_a_recipe_error():
    """A regressor's label agreement is unavailable and so, here, is its own metric."""
    from optkit.validation.accuracy import AccuracyReport

    available = AccuracyReport(metrics={"nonfinite_outputs": 0.0}, unavailable={"label_agreement": "no labels"})
    with pytest.raises(RecipeError, match="the task's own gate max_rel_error <= 0.001 cannot either"):
        resolve_gates([AccuracyGate(metric="label_agreement", min=0.99)], available, "regression")


def test_transformer_int8_on_a_sequence_classifier_is_gated_on_label_agreement(tmp_path):
    """The issue's case: the recipe's only fidelity gate (pooled cosine) cannot be evaluated; the
    substituted label agreement is evaluated by the conversion and recorded in the manifest."""
    pytest.importorskip("transformers")
    from tests import hf_task_models as models

    import optkit
    from tests_support import FAST

    folder = models.save_text_model(tmp_path / "cls", "BertForSequenceClassification")
    data = models.write_text(tmp_path / "text.txt", 6)
    out = tmp_path / "out"
    overrides = {**FAST, "passes.2.search": "off", "validation.max_samples": 6}
    result = optkit.convert(folder, "transformer-int8", out, data=str(data), overrides=overrides)
    gates = {g.name: g for g in result.gates}
    assert "pooled_cosine_min >= 0.99" not in gates
    sub = gates["label_agreement >= 0.99"]
    assert sub.status in {"passed", "failed"} and sub.value is not None
    assert "replaces pooled_cosine_min >= 0.99" in sub.reason
    assert any("replaced by label_agreement >= 0.99" in w for w in result.warnings)
    assert result.manifest is not None
    recorded = json.loads(result.manifest.model_dump_json())
    assert any(g["name"] == "label_agreement >= 0.99" and g["reason"] == sub.reason for g in recorded["gates"])
