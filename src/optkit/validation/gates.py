"""Gates: thresholds from the recipe, evaluated on measured figures. Every gate is evaluated (all
failures are collected before reporting, never stopping at the first).

A speed gate reads the speed-up's 95 % confidence interval (:mod:`optkit.validation.stats`):
``passed`` when the whole interval clears the threshold, ``failed`` when the whole interval is below
it, ``inconclusive`` when it straddles the threshold. An inconclusive gate blocks approval exactly
like a failed one (exit code 1, with or without ``--strict``: an approval must rest on a figure that
holds), but is reported distinctly, with the interval and the machine's state in ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass

from optkit.recipe import AccuracyGate, SpeedGate
from optkit.validation.accuracy import AccuracyReport
from optkit.validation.speed import ShapeResult, SpeedReport
from optkit.validation.stats import MIN_ROUNDS, verdict


@dataclass
class GateResult:
    """One gate's verdict.

    Attributes:
        name: human-readable, e.g. ``"tag_agreement >= 0.99"`` or ``"speedup b1 s128 cpu >= 1.2"``.
        kind: ``"accuracy"`` or ``"speed"``.
        metric / op / threshold: what was checked (``op`` is ``">="`` or ``"<="``).
        value: the measured value, or None when the gate was skipped.
        status: ``"passed"``, ``"failed"``, ``"inconclusive"`` (a speed gate whose interval
            straddles the threshold) or ``"skipped"``.
        reason: why a gate was skipped or inconclusive (or extra context).
        ci_low / ci_high: a speed gate's 95 % confidence interval of the speed-up (None otherwise).
    """

    name: str
    kind: str
    metric: str
    op: str
    threshold: float
    value: float | None
    status: str
    reason: str = ""
    ci_low: float | None = None
    ci_high: float | None = None

    def blocks(self, strict: bool) -> bool:
        """True when this gate stops approval: failed or inconclusive, or skipped under ``strict``."""
        return status_blocks(self.status, strict)


#: statuses that stop approval whatever the mode (``skipped`` stops it only under ``--strict``)
BLOCKING = frozenset({"failed", "inconclusive"})


def status_blocks(status: str, strict: bool) -> bool:
    """True when a gate of ``status`` stops approval (see :data:`BLOCKING`); for manifests read back
    as dicts, which have the status but no :class:`GateResult`."""
    return status in BLOCKING or (strict and status == "skipped")


def _verdict(value: float, op: str, threshold: float) -> str:
    ok = value >= threshold if op == ">=" else value <= threshold
    return "passed" if ok else "failed"


def evaluate_accuracy(gates: list[AccuracyGate], report: AccuracyReport) -> list[GateResult]:
    """Evaluate accuracy gates; a metric that cannot be computed on this data is ``skipped``."""
    results = []
    for gate in gates:
        op, threshold = (">=", gate.min) if gate.min is not None else ("<=", gate.max)
        assert threshold is not None  # an accuracy gate has min or max (AccuracyGate checks it)
        name = f"{gate.metric} {op} {threshold:g}"
        value = report.metrics.get(gate.metric)
        if value is None:
            reason = report.unavailable.get(gate.metric, "metric not computed")
            results.append(GateResult(name, "accuracy", gate.metric, op, threshold, None, "skipped", reason))
        elif value != value:  # NaN never passes
            results.append(GateResult(name, "accuracy", gate.metric, op, threshold, value, "failed", "NaN"))
        else:
            results.append(
                GateResult(name, "accuracy", gate.metric, op, threshold, value, _verdict(value, op, threshold))
            )
    return results


def evaluate_speed(gates: list[SpeedGate], report: SpeedReport | None) -> list[GateResult]:
    """Evaluate speed-up gates against measured shapes from their confidence intervals (see the
    module docstring); absent devices give ``skipped``, an unmeasured shape ``failed``."""
    results = []
    for gate in gates:
        seq = f" s{gate.sequence_length}" if gate.sequence_length else ""
        name = f"speedup b{gate.batch_size}{seq} {gate.device} >= {gate.min:g}"
        if report is None:
            results.append(GateResult(name, "speed", "speedup", ">=", gate.min, None, "skipped", "benchmark not run"))
            continue
        if gate.device in report.skipped_devices:
            results.append(
                GateResult(
                    name, "speed", "speedup", ">=", gate.min, None, "skipped", report.skipped_devices[gate.device]
                )
            )
            continue
        shape = report.find(gate.device, gate.batch_size, gate.sequence_length)
        if shape is None:
            results.append(
                GateResult(
                    name,
                    "speed",
                    "speedup",
                    ">=",
                    gate.min,
                    None,
                    "failed",
                    "shape not benchmarked: add it to benchmark.batch_sizes",
                )
            )
            continue
        results.append(_speed_result(name, gate, shape))
    return results


def _speed_result(name: str, gate: SpeedGate, shape: ShapeResult) -> GateResult:
    """The verdict of ``gate`` from ``shape``'s interval, with the figures it rests on in ``reason``."""
    figures = f"p50 {shape.source.p50_ms:.2f} ms vs {shape.artifact.p50_ms:.2f} ms"
    est = shape.estimate
    if est is None:
        return GateResult(
            name,
            "speed",
            "speedup",
            ">=",
            gate.min,
            shape.speedup,
            "inconclusive",
            f"{figures} timed in {shape.rounds} round(s): no confidence interval (it needs >= {MIN_ROUNDS} rounds)",
        )
    status = verdict(est.ci_low, est.ci_high, gate.min)
    interval = f"95 % interval [{est.ci_low:.2f}, {est.ci_high:.2f}] over {est.rounds} rounds"
    if status == "inconclusive":
        reason = f"speed inconclusive: {interval} straddles the {gate.min:g}× threshold; {figures}"
    elif status == "failed":
        reason = f"{interval} is below the {gate.min:g}× threshold; {figures}"
    else:
        reason = f"{interval} clears the {gate.min:g}× threshold; {figures}"
    if shape.noise is not None and (shape.noise.busy or status == "inconclusive"):
        reason += f"; {shape.noise.summary()}"
    return GateResult(name, "speed", "speedup", ">=", gate.min, est.ratio, status, reason, est.ci_low, est.ci_high)
