"""The one validation path: run a candidate ONNX model on the validation inputs, compare its outputs
with the source model's (the reference), and evaluate the recipe's accuracy gates.

Used by the pipeline (the final model), the accuracy-aware searches (each candidate, through
:class:`~optkit.search.evaluator.CandidateEvaluator`) and ``optkit verify --data``
(:func:`~optkit.artifact.revalidate.revalidate`), so that the three judge a model the same way.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optkit.errors import SourceModelError
from optkit.io_spec import ModelInfo
from optkit.recipe import AccuracyGate
from optkit.runners.base import Feeds, Runner
from optkit.validation.accuracy import AccuracyReport, compare
from optkit.validation.data import Padding, ValidationSet
from optkit.validation.gates import GateResult, evaluate_accuracy
from optkit.validation.padding import PaddedReference, run_padded


@dataclass
class Validation:
    """One model's validation against the source.

    Attributes:
        accuracy: every accuracy figure (see :mod:`optkit.validation.accuracy`).
        gates: the accuracy gates evaluated on ``accuracy``, in the recipe's order.
        by_padding: ``{padding: {metric: value}}`` for each padding validated (``"fixed"``,
            ``"per-batch"``); with both, ``accuracy`` holds each gated metric's worse value.
    """

    accuracy: AccuracyReport
    gates: list[GateResult]
    by_padding: dict[str, dict[str, float]] = field(default_factory=dict)


def validate_model(
    runner: Runner,
    reference: Feeds | PaddedReference,
    vset: ValidationSet,
    info: ModelInfo,
    gates: list[AccuracyGate],
    batch_size: int,
) -> Validation:
    """Run ``runner`` over every validation batch, concatenate its outputs, compare them with
    ``reference`` and evaluate ``gates``; under each padding the reference holds.

    Args:
        runner: the model under test (an ONNX Runtime runner; activated on its first call if it is
            not yet).
        reference: the source model's outputs on the same samples, ``{name: (N, ...)}``, N =
            ``vset.size`` (batches padded to the set's length), or a
            :class:`~optkit.validation.padding.PaddedReference` holding them under each padding
            (fixed and per-batch, :func:`~optkit.validation.padding.reference_outputs`).
        vset: the validation inputs (batched with ``vset.batches(batch_size, padding)``).
        info: the source model's task and labels (which task metrics apply).
        gates: the recipe's accuracy gates.
        batch_size: samples per call.

    Returns:
        The :class:`Validation` (accuracy figures and gate verdicts; a failed gate is a verdict,
        not an exception). With two paddings each gated metric takes its worse value
        (:func:`worse_of`): the lower for a ``min`` gate, the higher for a ``max`` gate.

    Raises:
        PassError: the outputs cannot be paired with the reference's by name
            (:func:`~optkit.validation.outputs.match_outputs`).
        Exception: whatever the runner raises for a model that does not run (ONNX Runtime's own
            types); callers decide what such a model means.
    """
    references: dict[Padding, Feeds] = (
        reference.outputs if isinstance(reference, PaddedReference) else {"fixed": reference}
    )
    reports = {
        padding: compare(ref, run_padded(runner, vset, batch_size, padding), vset, info)
        for padding, ref in references.items()
    }
    accuracy = worse_of(list(reports.values()), gates)
    by_padding = {str(p): dict(r.metrics) for p, r in reports.items()} if len(reports) > 1 else {}
    return Validation(accuracy, evaluate_accuracy(gates, accuracy), by_padding)


def worse_of(reports: list[AccuracyReport], gates: list[AccuracyGate]) -> AccuracyReport:
    """One report from several of the same model (one per padding): the first one's figures, with
    each gated metric replaced by its worst value over the reports (the lowest for a ``min`` gate,
    the highest for a ``max`` gate; NaN is the worst of all). A metric unavailable in any report is
    unavailable."""
    merged = copy.deepcopy(reports[0])
    if len(reports) == 1:
        return merged
    for gate in gates:
        values = [r.metrics[gate.metric] for r in reports if gate.metric in r.metrics]
        if len(values) != len(reports):
            continue
        if any(v != v for v in values):
            merged.metrics[gate.metric] = float("nan")
        else:
            merged.metrics[gate.metric] = min(values) if gate.min is not None else max(values)
    for report in reports[1:]:
        for metric, reason in report.unavailable.items():
            if metric not in merged.unavailable:
                merged.unavailable[metric] = reason
                merged.metrics.pop(metric, None)
    return merged


def finite_reference(outputs: dict[str, Any], mask: np.ndarray | None = None) -> dict[str, Any]:
    """The source's reference outputs, checked to be finite at real positions.

    Args:
        outputs: ``{name: array (N, ...)}`` from the source framework.
        mask: the inputs' ``attention_mask`` (N, T), if any: positions it marks as padding are not
            checked in outputs whose first two axes are (N, T) (a model may write anything there).

    Returns:
        ``outputs`` unchanged.

    Raises:
        SourceModelError: a float output holds NaN or Inf on the validation inputs (the source model
            itself, before any export: nothing can be validated against such a reference).
    """
    for name, array in outputs.items():
        if np.issubdtype(array.dtype, np.floating):
            real = array
            if mask is not None and array.ndim >= 2 and array.shape[:2] == mask.shape:
                real = array[mask.astype(bool)]
            bad = int(np.size(real) - np.count_nonzero(np.isfinite(real)))
            if bad:
                raise SourceModelError(
                    f"the source model's own output '{name}' holds {bad} NaN/Inf value(s) on the validation "
                    "inputs (before any export)",
                    "check the source model and the data; optkit cannot validate "
                    "against a reference that is not finite",
                )
    return outputs
