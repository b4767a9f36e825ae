"""The one validation path: run a candidate ONNX model on the validation inputs, compare its outputs
with the source model's (the reference), and evaluate the recipe's accuracy gates.

Used by the pipeline (the final model), the accuracy-aware searches (each candidate, through
:class:`~optkit.search.evaluator.CandidateEvaluator`) and ``optkit verify --data``
(:func:`~optkit.artifact.revalidate.revalidate`), so that the three judge a model the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from optkit.errors import SourceModelError
from optkit.io_spec import ModelInfo
from optkit.recipe import AccuracyGate
from optkit.runners.base import Feeds, Runner
from optkit.validation.accuracy import AccuracyReport, compare, concat_outputs
from optkit.validation.data import ValidationSet
from optkit.validation.gates import GateResult, evaluate_accuracy


@dataclass
class Validation:
    """One model's validation against the source.

    Attributes:
        accuracy: every accuracy figure (see :mod:`optkit.validation.accuracy`).
        gates: the accuracy gates evaluated on ``accuracy``, in the recipe's order.
    """

    accuracy: AccuracyReport
    gates: list[GateResult]


def validate_model(
    runner: Runner,
    reference: Feeds,
    vset: ValidationSet,
    info: ModelInfo,
    gates: list[AccuracyGate],
    batch_size: int,
) -> Validation:
    """Run ``runner`` over every validation batch, concatenate its outputs, compare them with
    ``reference`` and evaluate ``gates``.

    Args:
        runner: the model under test (an ONNX Runtime runner; activated on its first call if it is
            not yet).
        reference: the source model's outputs on the same samples, ``{name: (N, ...)}``, N =
            ``vset.size``.
        vset: the validation inputs (batched with ``vset.batches(batch_size)``).
        info: the source model's task and labels (which task metrics apply).
        gates: the recipe's accuracy gates.
        batch_size: samples per call.

    Returns:
        The :class:`Validation` (accuracy figures and gate verdicts; a failed gate is a verdict,
        not an exception).

    Raises:
        PassError: the outputs cannot be paired with the reference's by name
            (:func:`~optkit.validation.outputs.match_outputs`).
        Exception: whatever the runner raises for a model that does not run (ONNX Runtime's own
            types); callers decide what such a model means.
    """
    outputs = concat_outputs([runner.infer(batch) for batch in vset.batches(batch_size)])
    accuracy = compare(reference, outputs, vset, info)
    return Validation(accuracy, evaluate_accuracy(gates, accuracy))


def finite_reference(outputs: dict[str, Any]) -> dict[str, Any]:
    """The source's reference outputs, checked to be finite.

    Args:
        outputs: ``{name: array (N, ...)}`` from the source framework.

    Returns:
        ``outputs`` unchanged.

    Raises:
        SourceModelError: a float output holds NaN or Inf on the validation inputs (the source model
            itself, before any export: nothing can be validated against such a reference).
    """
    for name, array in outputs.items():
        if np.issubdtype(array.dtype, np.floating):
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
            if bad:
                raise SourceModelError(
                    f"the source model's own output '{name}' holds {bad} NaN/Inf value(s) on the validation "
                    "inputs (before any export)",
                    "check the source model and the data; optkit cannot validate "
                    "against a reference that is not finite",
                )
    return outputs
