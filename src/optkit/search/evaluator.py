"""Scores one candidate model the way the final gates will: same validation inputs, same source
outputs, same accuracy gates; plus its p50 latency at the recipe's gated shape."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from optkit.io_spec import ModelInfo
from optkit.recipe import AccuracyGate
from optkit.runners.base import Feeds
from optkit.runners.ort_runner import OrtRunner
from optkit.validation.accuracy import AccuracyReport
from optkit.validation.data import ValidationSet
from optkit.validation.gates import GateResult
from optkit.validation.padding import PaddedReference
from optkit.validation.speed import LatencyStats, time_runner
from optkit.validation.validate_model import validate_model


@dataclass
class Score:
    """One candidate's figures.

    Attributes:
        accuracy: every accuracy metric against the source (see ``optkit.validation.accuracy``).
        gates: the recipe's accuracy gates evaluated on ``accuracy``.
        passed: no accuracy gate failed (skipped gates do not block a candidate).
        margin: the worst normalised gate margin (> 0 passes; used to rank failing candidates).
        latency_ms: p50 wall time per call at the gated shape, ms.
        best_ms: the fastest call at that shape, ms: which passing candidates the ranking times
            first when more pass than it times (:data:`~optkit.search.int8_search.MAX_TIMED`).
    """

    accuracy: AccuracyReport
    gates: list[GateResult]
    passed: bool
    margin: float
    latency_ms: float
    best_ms: float


def gate_margin(gate: GateResult) -> float:
    """How far a gate is from its threshold, normalised: ``(value - min) / scale`` for ``>=`` and
    ``(max - value) / scale`` for ``<=``; ``scale`` is ``1 - threshold`` for thresholds in (0, 1)
    with ``>=`` (agreements, cosines: the room left below 1), otherwise ``max(|threshold|, 1)``.
    NaN counts as -inf; a skipped gate as +inf (it does not rank)."""
    if gate.value is None:
        return float("inf")
    if gate.value != gate.value:
        return float("-inf")
    if gate.op == ">=":
        scale = 1 - gate.threshold if 0 < gate.threshold < 1 else max(abs(gate.threshold), 1.0)
        return (gate.value - gate.threshold) / scale
    return (gate.threshold - gate.value) / max(abs(gate.threshold), 1.0)


class CandidateEvaluator:
    """Runs candidate models on the validation set and at the gated shape.

    Args:
        reference: the source framework's outputs on every validation sample, ``{name: (N, ...)}``,
            or under each padding the recipe validates (a :class:`PaddedReference`).
        vset: the validation inputs those outputs came from.
        info: the source model's task and labels.
        gates: the recipe's accuracy gates.
        batch_size: validation batch size (samples per call).
        threads: intra-op threads (the recipe's ``runtime.threads``, as every other runner).
        latency_feeds: inputs at the gated shape (e.g. 1 × 128 tokens) for the latency figure.
        warmup / iterations: untimed and timed calls for the latency figure (p50).
    """

    def __init__(
        self,
        reference: Feeds | PaddedReference,
        vset: ValidationSet,
        info: ModelInfo,
        gates: list[AccuracyGate],
        batch_size: int,
        threads: int,
        latency_feeds: Feeds,
        warmup: int = 3,
        iterations: int = 15,
    ) -> None:
        self.reference, self.vset, self.info, self.gates = reference, vset, info, gates
        self.batch_size, self.threads, self.latency_feeds = batch_size, threads, latency_feeds
        self.warmup, self.iterations = warmup, iterations

    def score(self, model_path: Path) -> Score:
        """Score ``model_path`` (an ``.onnx`` file). ONNX Runtime errors propagate to the caller."""
        with OrtRunner(model_path, self.threads) as runner:
            checked = validate_model(runner, self.reference, self.vset, self.info, self.gates, self.batch_size)
            times = time_runner(runner, self.latency_feeds, self.warmup, self.iterations)
        stats = LatencyStats.from_seconds(times, 1)
        gates = checked.gates
        margin = min((gate_margin(g) for g in gates), default=float("inf"))
        return Score(
            checked.accuracy, gates, all(g.status != "failed" for g in gates), margin, stats.p50_ms, stats.min_ms
        )

    def time_rounds(self, model_paths: list[Path], rounds: int = 5) -> list[list[list[float]]]:
        """Time every model of ``model_paths`` in ``rounds`` alternating rounds at the gated shape:
        each round runs a block of ``iterations`` calls of each model in turn (the order rotates by
        one model per round), after ``warmup`` untimed calls before a model's first block and one
        before each later block -- the speed gates' protocol (:mod:`optkit.validation.speed`), so a
        neighbour's burst lands on the blocks of some rounds of every model.

        Cost: ``len(model_paths) * rounds * (iterations + 1)`` calls plus ``warmup - 1`` per model,
        and one ONNX Runtime session per model, all open during the timing.

        Returns:
            Per model (in the order given), per round, the seconds of each timed call: shape
            (models, rounds, iterations).

        Raises:
            ONNX Runtime errors (a model the runtime rejects), as :meth:`score`.
        """
        runners = [OrtRunner(path, self.threads) for path in model_paths]
        blocks: list[list[list[float]]] = [[] for _ in runners]
        with contextlib.ExitStack() as release:  # each session is created at its first timing
            for runner in runners:
                release.callback(runner.deactivate)
            for number in range(rounds):
                shift = number % len(runners)
                for index in list(range(len(runners)))[shift:] + list(range(len(runners)))[:shift]:
                    warm = self.warmup if number == 0 else min(self.warmup, 1)
                    blocks[index].append(time_runner(runners[index], self.latency_feeds, warm, self.iterations))
        return blocks
