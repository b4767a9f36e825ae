"""Gates: thresholds from the recipe, evaluated on measured figures. Every gate is evaluated (all
failures are collected before reporting, never stopping at the first)."""

from __future__ import annotations

from dataclasses import dataclass

from optkit.recipe import AccuracyGate, SpeedGate
from optkit.validation.accuracy import AccuracyReport
from optkit.validation.speed import SpeedReport


@dataclass
class GateResult:
    """One gate's verdict.

    Attributes:
        name: human-readable, e.g. ``"tag_agreement >= 0.99"`` or ``"speedup b1 s128 cpu >= 1.2"``.
        kind: ``"accuracy"`` or ``"speed"``.
        metric / op / threshold: what was checked (``op`` is ``">="`` or ``"<="``).
        value: the measured value, or None when the gate was skipped.
        status: ``"passed"``, ``"failed"`` or ``"skipped"``.
        reason: why a gate was skipped (or extra context).
    """

    name: str
    kind: str
    metric: str
    op: str
    threshold: float
    value: float | None
    status: str
    reason: str = ""


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
    """Evaluate speed-up gates against measured shapes; absent devices give ``skipped``."""
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
        results.append(
            GateResult(
                name,
                "speed",
                "speedup",
                ">=",
                gate.min,
                shape.speedup,
                _verdict(shape.speedup, ">=", gate.min),
                f"p50 {shape.source.p50_ms:.2f} ms vs {shape.artifact.p50_ms:.2f} ms",
            )
        )
    return results
