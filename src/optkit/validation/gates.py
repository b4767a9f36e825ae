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
from typing import Any

import onnx

from optkit.recipe import AccuracyGate, SpeedGate
from optkit.validation.accuracy import AccuracyReport
from optkit.validation.int8_compute import GATE_NAME, int8_compute_ops, no_int8_reason
from optkit.validation.speed import ShapeResult, SpeedReport
from optkit.validation.stats import MIN_ROUNDS, verdict
from optkit.validation.task_gates import SubstitutedGate


@dataclass
class GateResult:
    """One gate's verdict.

    Attributes:
        name: human-readable, e.g. ``"tag_agreement >= 0.99"`` or ``"speedup b1 s128 cpu >= 1.2"``.
        kind: ``"accuracy"``, ``"speed"`` or ``"compute"`` (a quantized recipe's final model
            computes in int8: :func:`evaluate_int8_compute`).
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
    """Evaluate accuracy gates; a metric that cannot be computed on this data is ``skipped``.

    ``gates`` are the recipe's, resolved for the model's task
    (:func:`~optkit.validation.task_gates.resolve_gates`): a
    :class:`~optkit.validation.task_gates.SubstitutedGate` carries the substitution in its result's
    ``reason``."""
    results = []
    for gate in gates:
        op, threshold = (">=", gate.min) if gate.min is not None else ("<=", gate.max)
        assert threshold is not None  # an accuracy gate has min or max (AccuracyGate checks it)
        name = f"{gate.metric} {op} {threshold:g}"
        note = gate.reason if isinstance(gate, SubstitutedGate) else ""
        value = report.metrics.get(gate.metric)
        if value is None:
            reason = report.unavailable.get(gate.metric, "metric not computed")
            reason = f"{note}; {reason}" if note else reason
            results.append(GateResult(name, "accuracy", gate.metric, op, threshold, None, "skipped", reason))
        elif value != value:  # NaN never passes
            reason = f"{note}; NaN" if note else "NaN"
            results.append(GateResult(name, "accuracy", gate.metric, op, threshold, value, "failed", reason))
        else:
            results.append(
                GateResult(name, "accuracy", gate.metric, op, threshold, value, _verdict(value, op, threshold), note)
            )
    return results


#: quantize passes and the recipe key (under the pass) that accepts a model without int8 compute
QUANTIZE_PASSES = {"quantize-dynamic": "search_space.allow_fp32", "quantize-static": "allow_fp32"}


def _allows_fp32(pass_cfg: Any) -> bool:
    if pass_cfg.type == "quantize-dynamic":
        return bool(pass_cfg.search_space.allow_fp32)
    return bool(getattr(pass_cfg, "allow_fp32", False))


def evaluate_int8_compute(passes: list[Any], model: onnx.ModelProto) -> list[GateResult]:
    """The ``int8_compute_ops >= 1`` gate of a recipe with a quantize pass, on its final ``model``
    (:mod:`optkit.validation.int8_compute`): ``failed`` when no int8 matrix product or convolution
    is left, unless the pass allows an all-float32 outcome (then the gate reads ``>= 0`` and
    passes, saying so). No gate (an empty list) for a recipe without a quantize pass.

    Args:
        passes: the recipe's pass configs (their ``type``).
        model: the final ONNX model.
    """
    quantize = [p for p in passes if p.type in QUANTIZE_PASSES]
    if not quantize:
        return []
    counts = int8_compute_ops(model)
    total = float(sum(counts.values()))
    found = ", ".join(f"{n} {op}" for op, n in counts.items())
    last = quantize[-1]
    if total:
        return [GateResult(GATE_NAME, "compute", "int8_compute_ops", ">=", 1, total, "passed", found)]
    if any(_allows_fp32(p) for p in quantize):
        reason = f"no int8 compute left; {last.type}.{QUANTIZE_PASSES[last.type]}: true accepts a float32 model"
        return [GateResult("int8_compute_ops >= 0", "compute", "int8_compute_ops", ">=", 0, 0.0, "passed", reason)]
    reason = no_int8_reason(last.type, model, QUANTIZE_PASSES[last.type])
    return [GateResult(GATE_NAME, "compute", "int8_compute_ops", ">=", 1, 0.0, "failed", reason)]


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
    interval = f"95 % interval [{est.ci_low:.2f}, {est.ci_high:.2f}] over {est.rounds} rounds"
    if shape.contended:
        noise = shape.noise
        busy = (
            f"{len(noise.contended_rounds)} of {shape.rounds} rounds were timed while other processes used more "
            f"than the {noise.spare_cores:g} spare core(s)"
            if noise is not None
            else "too few rounds were timed with the cores free"
        )
        return GateResult(
            name,
            "speed",
            "speedup",
            ">=",
            gate.min,
            est.ratio,
            "inconclusive",
            f"speed inconclusive: {busy}, so no interval can decide the {gate.min:g}× threshold "
            f"(over every round: {interval}, not evidence); {figures}; rerun on a quiet machine",
            est.ci_low,
            est.ci_high,
        )
    status = verdict(est.ci_low, est.ci_high, gate.min)
    if status == "inconclusive":
        reason = f"speed inconclusive: {interval} straddles the {gate.min:g}× threshold; {figures}"
    elif status == "failed":
        reason = f"{interval} is below the {gate.min:g}× threshold; {figures}"
    else:
        reason = f"{interval} clears the {gate.min:g}× threshold; {figures}"
    if shape.noise is not None and (shape.noise.busy or status == "inconclusive"):
        reason += f"; {shape.noise.summary()}"
    return GateResult(name, "speed", "speedup", ">=", gate.min, est.ratio, status, reason, est.ci_low, est.ci_high)
