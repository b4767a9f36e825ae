"""Each task's own fidelity gate, and the resolution of a recipe's fidelity gates for one model.

A recipe is written for a family of models (``transformer-int8``: sentence encoders, gated on the
cosine of mean-pooled embeddings), but a user may run it on a model of another task (a sequence
classifier, whose logits have no tokens to pool). A fidelity gate (:data:`~optkit.recipe.FIDELITY_METRICS`)
whose metric cannot be computed for the model is then **never silently skipped**:

* it is replaced by the task's own gate from :data:`TASK_FIDELITY` (one table, here), evaluated in
  its place by the search and by the final validation; the substitution is named in the gate's
  ``reason`` and in a warning (``gate X cannot be evaluated for task T; replaced by Y >= t``);
* when the recipe already gates the task's own metric, the unevaluable gate stays ``skipped``
  (reported with its reason; ``--strict`` refuses it): the recipe's own gate on that metric holds;
* when no fidelity gate at all can be evaluated (the task has no gate in the table, or its metric
  is unavailable too), the conversion stops with a :class:`~optkit.errors.RecipeError` (exit 2)
  before any export or pass.

Availability is read from the reference outputs alone (:func:`available_metrics`: the source's
outputs compared with themselves), so it is known before the first candidate is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from optkit.errors import RecipeError
from optkit.io_spec import ModelInfo
from optkit.recipe import FIDELITY_METRICS, AccuracyGate
from optkit.runners.base import Feeds
from optkit.validation.accuracy import AccuracyReport, compare
from optkit.validation.data import ValidationSet


@dataclass(frozen=True)
class TaskGate:
    """A task's own fidelity gate: ``metric op threshold`` (``op`` is ``">="`` or ``"<="``)."""

    metric: str
    op: str
    threshold: float

    @property
    def name(self) -> str:
        """``"label_agreement >= 0.99"``."""
        return f"{self.metric} {self.op} {self.threshold:g}"

    def to_gate(self, replaces: str, reason: str) -> SubstitutedGate:
        """This gate as an :class:`~optkit.recipe.AccuracyGate` standing in for the recipe's ``replaces``."""
        bound = {"min": self.threshold} if self.op == ">=" else {"max": self.threshold}
        return SubstitutedGate.model_validate({"metric": self.metric, "replaces": replaces, "reason": reason, **bound})


#: task -> its own fidelity gate. Thresholds: agreement of the predicted class (or tag, or token, or
#: answer span end) on at least 99 % of rows, the strictness of the built-in int8 recipes' cosine
#: gates (0.99); features by the cosine of every row; regressions by relative error 1e-3 (the
#: tabular regressor recipe's bound, float32 arithmetic against float64).
TASK_FIDELITY: dict[str, TaskGate] = {
    "token-classification": TaskGate("tag_agreement", ">=", 0.99),
    "sequence-classification": TaskGate("label_agreement", ">=", 0.99),
    "image-classification": TaskGate("label_agreement", ">=", 0.99),
    "audio-classification": TaskGate("label_agreement", ">=", 0.99),
    "classification": TaskGate("label_agreement", ">=", 0.99),
    "outlier-detection": TaskGate("label_agreement", ">=", 0.99),
    "clustering": TaskGate("label_agreement", ">=", 0.99),
    "fill-mask": TaskGate("top1_agreement", ">=", 0.99),
    "question-answering": TaskGate("top1_agreement", ">=", 0.99),
    "feature-extraction": TaskGate("cosine_min", ">=", 0.99),
    "regression": TaskGate("max_rel_error", "<=", 1e-3),
}


class SubstitutedGate(AccuracyGate):
    """A task's own gate evaluated in place of a recipe gate that cannot be evaluated for the model.

    Attributes:
        replaces: the recipe gate's name, e.g. ``"pooled_cosine_min >= 0.99"``.
        reason: why, as the gate's ``reason`` in the report and the manifest.
    """

    replaces: str
    reason: str


@dataclass
class ResolvedGates:
    """A recipe's accuracy gates for one model.

    Attributes:
        gates: the gates to evaluate, in the recipe's order, substitutes in place of the gates they replace.
        warnings: one line per substitution.
    """

    gates: list[AccuracyGate]
    warnings: list[str]


def gate_name(gate: AccuracyGate) -> str:
    """``"metric op threshold"`` of a recipe gate."""
    op, threshold = (">=", gate.min) if gate.min is not None else ("<=", gate.max)
    return f"{gate.metric} {op} {threshold:g}"


def available_metrics(reference: Feeds, vset: ValidationSet, info: ModelInfo) -> AccuracyReport:
    """The metrics that can be computed for this model and data: the reference outputs compared
    with themselves (values meaningless, availability exact: it depends on the outputs' shapes,
    the task and the data, not on the values).

    Args:
        reference: the source's outputs ``{name: (N, ...)}`` on ``vset``.
        vset / info: the validation inputs and the model's task.
    """
    return compare(reference, reference, vset, info)


def resolve_gates(
    gates: list[AccuracyGate], available: AccuracyReport, task: str | None, where: str = "the recipe"
) -> ResolvedGates:
    """Replace every fidelity gate that cannot be evaluated by the task's own (see the module docstring).

    Args:
        gates: the recipe's accuracy gates.
        available: :func:`available_metrics` of the reference (``metrics`` holds the computable ones).
        task: the model's task (:attr:`~optkit.io_spec.ModelInfo.task`), None when unknown.
        where: names the recipe in the error.

    Returns:
        The :class:`ResolvedGates`.

    Raises:
        RecipeError: no fidelity gate can be evaluated for this model and the task has no gate of
            its own that can (exit 2).
    """
    own = TASK_FIDELITY.get(task or "")
    gated: set[str] = {g.metric for g in gates}
    label = task or "unknown"
    resolved: list[AccuracyGate] = []
    warnings: list[str] = []
    for gate in gates:
        if gate.metric not in FIDELITY_METRICS or gate.metric in available.metrics:
            resolved.append(gate)
            continue
        why = available.unavailable.get(gate.metric, "not computed for this task")
        if own is not None and own.metric in available.metrics and own.metric not in gated:
            gated.add(own.metric)
            name = gate_name(gate)
            reason = f"replaces {name}, which cannot be evaluated for task {label} ({why}): the task's own gate"
            resolved.append(own.to_gate(name, reason))
            warnings.append(f"gate {name} cannot be evaluated for task {label} ({why}); replaced by {own.name}")
        else:
            resolved.append(gate)  # skipped with its reason; another fidelity gate must hold (below)
    if not any(g.metric in FIDELITY_METRICS and g.metric in available.metrics for g in resolved):
        recipe_gates = ", ".join(gate_name(g) for g in gates if g.metric in FIDELITY_METRICS) or "none"
        computable = sorted(m for m in available.metrics if m in FIDELITY_METRICS)
        reasons = "; ".join(f"{m}: {r}" for m, r in available.unavailable.items() if m in gated)
        raise RecipeError(
            f"{where}: no fidelity gate can be evaluated for this model (task {label}; recipe gates: "
            f"{recipe_gates}{'; ' + reasons if reasons else ''}) and "
            + (f"the task's own gate {own.name} cannot either" if own else "the task has no gate of its own"),
            "pick a recipe for this model's task (`optkit recipes list`)"
            + (f" or add a gate on one of {', '.join(computable)}" if computable else ""),
        )
    return ResolvedGates(resolved, warnings)
