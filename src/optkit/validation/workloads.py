"""Real workloads beside the fixed shapes: throughput over the real validation batches with
per-batch (dynamic) padding, source vs artifact, and a batch-size scan of the artifact alone.

**Real-length throughput** (:func:`measure_real_length`): the validation set is cut into batches of
the recipe's batch size, each padded only to its own longest real example
(:meth:`~optkit.validation.data.ValidationSet.batches` with ``"per-batch"``, as a server that pads
each request does); sets without a token axis (images, tabular rows) or models that fix their
length are timed in their batches as they are. At most ``max_batches`` batches are used (the first
ones, in order), so that the step stays bounded: a **block** is one pass over those batches (one
timed call per batch, :meth:`~optkit.runners.base.Runner.time_pass`: the loop runs where the runner
runs, inside the worker for the source, in one request, so that no message passing is timed).
Source and artifact alternate blocks in ``rounds`` rounds, as at the fixed shapes
(:mod:`optkit.validation.speed`); the first round is preceded by one untimed call per batch of each
runner (each new shape warms its allocator and kernels). Throughput = samples in the pass / the
median of the rounds' pass times (samples/s); the throughput ratio artifact / source equals the
ratio of pass times source / artifact, whose 95 % interval is the bootstrap over rounds of
:func:`~optkit.validation.stats.speedup_interval` (each round's pass time a one-value block).

**Batch-size scan** (:func:`scan_batch_sizes`): the artifact alone at batch 1, 2, 4, … up to
``max_batch`` (``max_batch`` itself included when it is no power of two), at one sequence length,
one untimed call then ``calls`` timed calls per batch size; throughput = batch / p50 (samples/s) and
the best batch size is the one of the highest throughput (the smaller on a tie). The benchmark
literature finds that size hard to predict (it depends on the model, the cores and the cache), which
is why it is measured. The scan stops before a batch size whose calls would end past ``budget_s``
seconds (guessed linear in the batch size from the previous size's mean call), and says so
(:attr:`BatchScan.stopped`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from optkit import interrupts
from optkit.runners.base import Feeds, Runner
from optkit.validation.data import Padding, ValidationSet
from optkit.validation.latency import LatencyStats
from optkit.validation.noise import NoiseMonitor, NoiseRecord
from optkit.validation.stats import MIN_ROUNDS, RatioEstimate, speedup_interval

#: real batches per block when the recipe does not say (``benchmark.real_length_batches``)
REAL_BATCHES_PER_BLOCK = 4
#: timed calls per batch size in the scan
SCAN_CALLS = 5


@dataclass
class RealLengthResult:
    """Source vs artifact over the real validation batches at one batch size (CPU).

    Attributes:
        device: ``"cpu"``.
        batch_size: samples per batch (the last batch may hold fewer).
        padding: ``"per-batch"`` (token inputs cut to each batch's longest example) or ``"fixed"``
            (no token axis, or a model that fixes its length: the batches as they are).
        batches / samples: batches and samples in one pass (one block).
        mean_length: mean padded length of the batches (tokens), None without a token axis.
        source_throughput / artifact_throughput: samples / median pass time, samples/s.
        source_round_s / artifact_round_s: each round's pass time (s), in timing order.
        estimate: artifact / source throughput (= source / artifact pass time) with its 95 % interval
            over rounds; None below :data:`~optkit.validation.stats.MIN_ROUNDS` rounds.
        noise: the machine's state during this timing.
    """

    device: str
    batch_size: int
    padding: Padding
    batches: int
    samples: int
    mean_length: float | None
    source_throughput: float
    artifact_throughput: float
    source_round_s: list[float] = field(default_factory=list)
    artifact_round_s: list[float] = field(default_factory=list)
    estimate: RatioEstimate | None = None
    noise: NoiseRecord | None = None


@dataclass
class ScanPoint:
    """The artifact at one batch size of the scan: ``latency`` over :data:`SCAN_CALLS` calls."""

    batch_size: int
    latency: LatencyStats


@dataclass
class BatchScan:
    """The artifact's throughput against the batch size (see the module docstring).

    Attributes:
        device: ``"cpu"``.
        sequence_length: the length timed (tokens), None without a token axis.
        max_batch: the recipe's ``benchmark.scan_max_batch``.
        points: one per batch size timed, in increasing batch size.
        best_batch_size: the batch size of the highest throughput (samples/s).
        stopped: why the scan ended before ``max_batch`` (the time budget), or empty.
    """

    device: str
    sequence_length: int | None
    max_batch: int
    points: list[ScanPoint] = field(default_factory=list)
    best_batch_size: int = 0
    stopped: str = ""

    @property
    def best_throughput(self) -> float:
        """The best point's throughput (samples/s), 0.0 without points."""
        return max((p.latency.throughput for p in self.points), default=0.0)


def real_batches(vset: ValidationSet, batch_size: int, max_batches: int) -> tuple[list[Feeds], Padding]:
    """The first ``max_batches`` batches of ``vset`` at ``batch_size``, each padded to its own longest
    example when the set allows it (:attr:`~optkit.validation.data.ValidationSet.pads_per_batch`),
    else as they are; returns the batches and the padding used.

    Raises:
        ValueError: ``batch_size`` or ``max_batches`` below 1.
    """
    if batch_size < 1 or max_batches < 1:
        raise ValueError(f"batch_size and max_batches must be >= 1, got {batch_size}, {max_batches}")
    padding: Padding = "per-batch" if vset.pads_per_batch else "fixed"
    return vset.batches(batch_size, padding)[:max_batches], padding


def _pass_seconds(runner: Runner, batches: list[Feeds], warm: bool) -> float:
    """One pass over ``batches`` (:meth:`~optkit.runners.base.Runner.time_pass`); total seconds."""
    interrupts.check()
    seconds = runner.time_pass(batches, warm)
    interrupts.check()
    return seconds


def measure_real_length(
    source: Runner,
    artifact: Runner,
    vset: ValidationSet,
    batch_size: int,
    rounds: int,
    max_batches: int = REAL_BATCHES_PER_BLOCK,
    monitor: NoiseMonitor | None = None,
) -> RealLengthResult:
    """Time ``source`` and ``artifact`` over the real batches in alternating rounds (module docstring).

    Args:
        source / artifact: activated runners on the same device with the same thread count.
        vset: the validation set (its real lengths by ``attention_mask``).
        batch_size: samples per batch.
        rounds: rounds (>= :data:`~optkit.validation.stats.MIN_ROUNDS` for an interval).
        max_batches: the most batches per block.
        monitor: reads the machine's state around the timing (a fresh one when None).

    Raises:
        ValueError: ``rounds`` below 1, or see :func:`real_batches`.
        DataError: a runner rejected a batch (from the runner).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    batches, padding = real_batches(vset, batch_size, max_batches)
    samples = sum(len(next(iter(b.values()))) for b in batches)
    full = vset.sequence_length
    lengths = [vset.batch_length(b) if padding == "per-batch" else full or 0 for b in batches]
    mean_length = float(np.mean(lengths)) if full is not None else None
    monitor = monitor or NoiseMonitor()
    monitor.start()
    src_s: list[float] = []
    art_s: list[float] = []
    for index in range(rounds):
        src_s.append(_pass_seconds(source, batches, warm=index == 0))
        art_s.append(_pass_seconds(artifact, batches, warm=index == 0))
    noise = monitor.stop([s * 1e3 for s in src_s], [s * 1e3 for s in art_s])
    estimate = speedup_interval([[s] for s in src_s], [[s] for s in art_s]) if rounds >= MIN_ROUNDS else None
    return RealLengthResult(
        source.device,
        batch_size,
        padding,
        len(batches),
        samples,
        mean_length,
        samples / float(np.median(src_s)),
        samples / float(np.median(art_s)),
        src_s,
        art_s,
        estimate,
        noise,
    )


def scan_ladder(max_batch: int) -> list[int]:
    """Batch sizes 1, 2, 4, … up to ``max_batch``, with ``max_batch`` itself last when it is no power
    of two (e.g. 24 -> [1, 2, 4, 8, 16, 24]).

    Raises:
        ValueError: ``max_batch`` below 1.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    sizes = [1 << i for i in range(max_batch.bit_length()) if 1 << i <= max_batch]
    return sizes if sizes[-1] == max_batch else [*sizes, max_batch]


def scan_batch_sizes(
    artifact: Runner,
    vset: ValidationSet,
    max_batch: int,
    sequence_length: int | None,
    calls: int = SCAN_CALLS,
    budget_s: float = 8.0,
    clock: Callable[[], float] = time.monotonic,
) -> BatchScan:
    """Time the artifact alone at each batch size of :func:`scan_ladder` (module docstring).

    Args:
        artifact: an activated runner.
        vset: real inputs, shaped per batch size with :meth:`ValidationSet.shaped`.
        max_batch: the largest batch size.
        sequence_length: tokens, for token inputs (None without a token axis).
        calls: timed calls per batch size (>= 1), after one untimed call.
        budget_s: seconds the scan may take; a batch size whose calls would end past it is not
            started (the first is always timed).
        clock: seconds, for the budget (injectable for tests).

    Raises:
        ValueError: ``calls`` below 1, or see :func:`scan_ladder`.
        DataError: the runner rejected the inputs (from the runner).
    """
    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    ladder = scan_ladder(max_batch)
    scan = BatchScan(artifact.device, sequence_length, max_batch)
    start = clock()
    for batch in ladder:
        if scan.points:
            last = scan.points[-1]
            # the next size's time, guessed linear in the batch from the last one's mean call
            guess = last.latency.mean_ms / 1e3 * batch / last.batch_size * (calls + 1)
            if clock() - start + guess > budget_s:
                scan.stopped = (
                    f"stopped before batch {batch}: the scan's time budget ({budget_s:g} s) would be exceeded"
                )
                break
        interrupts.check()
        seconds = artifact.time_calls(vset.shaped(batch, sequence_length), 1, calls)
        scan.points.append(ScanPoint(batch, LatencyStats.from_seconds(seconds, batch)))
    scan.best_batch_size = best_batch(scan.points)
    return scan


def best_batch(points: Sequence[ScanPoint]) -> int:
    """The batch size of the highest throughput, the smaller one on a tie; 0 without points."""
    best = max(points, key=lambda p: (p.latency.throughput, -p.batch_size), default=None)
    return best.batch_size if best else 0
