"""Side-by-side latency of the source model and the artifact, measured in the same run.

Method (see docs/benchmarks.md, "How speed verdicts are decided"): both runners get the same inputs
(real validation samples padded or truncated to each shape), the same intra-op thread count, then
alternate in **rounds**: a block of ``iterations`` timed calls of the source, then a block of the
artifact, repeated ``rounds`` times (``warmup`` untimed calls before each runner's first block, one
before every later block). Blocks, not single interleaved calls: interleaving call by call lets one
runtime's spinning worker threads (OpenMP, ORT's thread pool) steal the cores the other needs, which
slowed a tiny TorchScript model ~50x in our measurements. Rounds, not one block each: a neighbour's
burst lands on both runners' blocks of some rounds instead of deciding the whole figure, and the
round-to-round spread gives the speed-up its confidence interval (:mod:`optkit.validation.stats`).
Rounds in which other processes needed the cores the runners use (*contended* rounds, read per
round by :class:`~optkit.validation.noise.NoiseMonitor`) are timed and reported but left out of
the interval: their speed-ups are biased, not just noisy. A shape with fewer than
:data:`~optkit.validation.stats.MIN_ROUNDS` uncontended rounds decides no gate (``inconclusive``).
Each runner keeps its own process: the source runs (and is timed) inside the confined worker, the
artifact in optkit's process.

While a speed gate at a shape is ``inconclusive`` (its interval straddles the threshold), more
rounds are timed, up to ``max_rounds`` or ``budget_s`` seconds for that shape.

Latency is wall time per call (``time.perf_counter``), reported as the median (p50), the 90th and
the 99th percentile (p90, p99) in milliseconds over every call of every round; throughput = batch size / p50 in
samples per second; speed-up = source p50 / artifact p50.

After the fixed shapes, :func:`time_workloads` adds the real workloads: throughput over the real
validation batches with per-batch padding and the artifact's batch-size scan
(:mod:`optkit.validation.workloads`), and each runner's own peak memory
(:mod:`optkit.validation.peak_memory`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optkit import interrupts
from optkit.recipe import BenchmarkConfig, SpeedGate
from optkit.runners.base import Feeds, Runner
from optkit.runners.ort_runner import OrtRunner
from optkit.validation.data import ValidationSet
from optkit.validation.latency import LatencyStats
from optkit.validation.noise import NoiseMonitor, NoiseRecord
from optkit.validation.peak_memory import PeakMemory, artifact_peak, reset_peak, worker_peak
from optkit.validation.stats import MIN_ROUNDS, RatioEstimate, speedup_interval, verdict
from optkit.validation.workloads import BatchScan, RealLengthResult, measure_real_length, scan_batch_sizes


@dataclass
class GateVerdict:
    """A speed gate's threshold at a shape and the verdict its interval gives (see
    :func:`optkit.validation.stats.verdict`)."""

    threshold: float
    verdict: str


@dataclass
class ShapeResult:
    """Source vs artifact at one (device, batch size, sequence length).

    Attributes:
        source / artifact: latency over every timed call of every round.
        source_round_ms / artifact_round_ms: each round's p50 (ms), in timing order.
        estimate: the speed-up with its 95 % interval over rounds; None when fewer than
            :data:`~optkit.validation.stats.MIN_ROUNDS` rounds were timed (then no gate can pass on it).
        verdicts: the verdict of each speed gate read at this shape, after the last round.
        noise: the machine's state during this shape's timing (load, others' CPU, spread).
        contended: fewer than MIN_ROUNDS rounds were free of contention, so ``estimate`` is over
            every round, reported but deciding no gate (each gate here is ``inconclusive``);
            otherwise ``estimate`` is over the uncontended rounds only (:mod:`optkit.validation.noise`).
    """

    device: str
    batch_size: int
    sequence_length: int | None
    source: LatencyStats
    artifact: LatencyStats
    source_round_ms: list[float] = field(default_factory=list)
    artifact_round_ms: list[float] = field(default_factory=list)
    estimate: RatioEstimate | None = None
    verdicts: list[GateVerdict] = field(default_factory=list)
    noise: NoiseRecord | None = None
    contended: bool = False

    @property
    def speedup(self) -> float:
        """Source p50 / artifact p50 (> 1 means the artifact is faster)."""
        return self.source.p50_ms / self.artifact.p50_ms

    @property
    def rounds(self) -> int:
        """Rounds timed (source block + artifact block each)."""
        return len(self.source_round_ms)


@dataclass
class SpeedReport:
    """Every speed figure of one run.

    Attributes:
        shapes: one entry per (device, batch size, sequence length).
        threads / warmup / iterations: the settings used for both runners (``iterations`` calls
            per block).
        rounds / max_rounds / budget_s: the timing protocol (see the module docstring).
        load_seconds: ``{"source": s, "artifact": s}``: model load / session creation time.
        rss_growth_mb: ``{"source": MB, "artifact": MB}``: growth of the resident set of the
            process each runner ran in while loading the model and running the first batch (psutil;
            kept for old readers: the artifact shares optkit's process, so its figure reads ~0;
            ``peak_memory`` is each runner's own process).
        peak_memory: ``{"source": PeakMemory, "artifact": PeakMemory}``: each runner's own process
            at its peak resident set (:mod:`optkit.validation.peak_memory`; MB = 10^6 bytes).
        real_length: throughput over the real validation batches, each padded to its own longest
            example, per batch size (:mod:`optkit.validation.workloads`); empty when
            ``benchmark.real_length`` is off.
        batch_scan: the artifact's throughput against the batch size, or None when
            ``benchmark.scan_max_batch`` is unset.
        workload_seconds: wall seconds (s) each real-workload part took: ``real lengths``,
            ``batch scan``, ``peak memory`` (what the figures cost; in the benchmark step's details).
        size_mb: ``{"source": MB, "artifact": MB}``: file size on disk (MB = 10^6 bytes; a
            folder counts all its files; the artifact counts its external data file too).
        skipped_devices: ``{device: reason}`` for devices a gate asked for that are absent.
        warnings: the busy-machine warnings of every shape (see :mod:`optkit.validation.noise`).
    """

    threads: int
    warmup: int
    iterations: int
    shapes: list[ShapeResult] = field(default_factory=list)
    load_seconds: dict[str, float] = field(default_factory=dict)
    rss_growth_mb: dict[str, float] = field(default_factory=dict)
    size_mb: dict[str, float] = field(default_factory=dict)
    skipped_devices: dict[str, str] = field(default_factory=dict)
    rounds: int = 0
    max_rounds: int = 0
    budget_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    peak_memory: dict[str, PeakMemory] = field(default_factory=dict)
    real_length: list[RealLengthResult] = field(default_factory=list)
    batch_scan: BatchScan | None = None
    workload_seconds: dict[str, float] = field(default_factory=dict)

    def find(self, device: str, batch_size: int, sequence_length: int | None) -> ShapeResult | None:
        """The result at a shape; ``sequence_length=None`` matches the first one measured."""
        for shape in self.shapes:
            if (
                shape.device == device
                and shape.batch_size == batch_size
                and (sequence_length is None or shape.sequence_length == sequence_length)
            ):
                return shape
        return None


@dataclass(frozen=True)
class TimingPlan:
    """How each shape is timed.

    Attributes:
        warmup: untimed calls before each runner's first block (one before every later block).
        iterations: timed calls per block.
        rounds: rounds always timed (>= 3 for an interval; recipes ask for >= 5).
        max_rounds: the most rounds while a gate at the shape is inconclusive (>= ``rounds``).
        budget_s: seconds a shape may spend on extra rounds while inconclusive (0 = none).
    """

    warmup: int
    iterations: int
    rounds: int = 5
    max_rounds: int = 5
    budget_s: float = 0.0


def size_on_disk_mb(*paths: Path) -> float:
    """Total size in MB (10^6 bytes) of files, or of every file in folders; missing paths count 0."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path.exists():
            total += path.stat().st_size
    return total / 1e6


def activate_measured(runner: Runner, feeds: Feeds) -> float:
    """Activate ``runner`` and run ``feeds`` once; return the growth (MB) of the resident set of
    the process the runner executes in (the source's worker process, or this one)."""
    before = runner.process_rss_mb()
    runner.activate()
    runner.infer(feeds)
    return max(0.0, runner.process_rss_mb() - before)


def time_runner(runner: Runner, feeds: Feeds, warmup: int, iterations: int) -> list[float]:
    """``warmup`` untimed calls, then ``iterations`` timed calls; returns seconds per call
    (see :meth:`~optkit.runners.base.Runner.time_calls`)."""
    interrupts.check()
    times = runner.time_calls(feeds, warmup, iterations)
    interrupts.check()
    return times


def _verdicts(
    estimate: RatioEstimate | None, thresholds: Sequence[float], contended: bool = False
) -> list[GateVerdict]:
    if estimate is None or contended:
        return [GateVerdict(t, "inconclusive") for t in thresholds]
    return [GateVerdict(t, verdict(estimate.ci_low, estimate.ci_high, t)) for t in thresholds]


def measure_shape(
    source: Runner,
    artifact: Runner,
    feeds: Feeds,
    batch_size: int,
    sequence_length: int | None,
    plan: TimingPlan,
    thresholds: Sequence[float] = (),
    clock: Callable[[], float] = time.monotonic,
    monitor: NoiseMonitor | None = None,
) -> ShapeResult:
    """Time ``source`` and ``artifact`` at one shape in alternating rounds (see the module docstring).

    Args:
        source / artifact: activated runners on the same device with the same thread count.
        feeds: the inputs at this shape.
        batch_size / sequence_length: the shape, for the record (``sequence_length`` None for
            inputs without a token axis).
        plan: warm-up, calls per block, rounds, and the re-measuring limits.
        thresholds: the minimum speed-ups of the gates read at this shape; while any is
            inconclusive, extra rounds are timed within ``plan.max_rounds`` and ``plan.budget_s``.
        clock: seconds, for the budget (injectable for tests).
        monitor: reads the machine's state around the window (a fresh :class:`NoiseMonitor` when None).

    Raises:
        DataError: a runner rejected the inputs (from the runner).
        KeyboardInterrupt and the other signals of :mod:`optkit.interrupts` between blocks.
    """
    monitor = monitor or NoiseMonitor(clock, max(source.threads, artifact.threads))
    monitor.start()
    src_blocks: list[list[float]] = []
    art_blocks: list[list[float]] = []
    quiet: list[int] = []  # rounds not contended (see optkit.validation.noise): only these decide gates
    estimate: RatioEstimate | None = None
    contended = False
    extra_since: float | None = None
    while True:
        first = not src_blocks
        warm = plan.warmup if first else min(plan.warmup, 1)
        monitor.round_started()
        src_blocks.append(time_runner(source, feeds, warm, plan.iterations))
        art_blocks.append(time_runner(artifact, feeds, warm, plan.iterations))
        if not monitor.round_done():
            quiet.append(len(src_blocks) - 1)
        done = len(src_blocks)
        if len(quiet) >= MIN_ROUNDS:
            estimate = speedup_interval([src_blocks[i] for i in quiet], [art_blocks[i] for i in quiet])
            contended = False
        elif done >= MIN_ROUNDS:  # reported, but no gate rests on it
            estimate = speedup_interval(src_blocks, art_blocks)
            contended = True
        if done < plan.rounds:
            continue
        pending = any(v.verdict == "inconclusive" for v in _verdicts(estimate, thresholds, contended))
        if extra_since is None:
            extra_since = clock()
        if not pending or done >= plan.max_rounds or clock() - extra_since >= plan.budget_s:
            break
    src_round = [float(np.median(b)) * 1e3 for b in src_blocks]
    art_round = [float(np.median(b)) * 1e3 for b in art_blocks]
    noise = monitor.stop(src_round, art_round)
    return ShapeResult(
        source.device,
        batch_size,
        sequence_length,
        LatencyStats.from_seconds([t for b in src_blocks for t in b], batch_size),
        LatencyStats.from_seconds([t for b in art_blocks for t in b], batch_size),
        src_round,
        art_round,
        estimate,
        _verdicts(estimate, thresholds, contended),
        noise,
        contended,
    )


def gate_reads(
    gate: SpeedGate, device: str, batch_size: int, sequence_length: int | None, first_seq: int | None
) -> bool:
    """True when ``gate`` is read at this shape, matching :meth:`SpeedReport.find`: same device and
    batch size, and the gate's sequence length (None = the first one timed, ``first_seq``)."""
    wanted = gate.sequence_length if gate.sequence_length is not None else first_seq
    return gate.device == device and gate.batch_size == batch_size and wanted == sequence_length


def benchmark(
    source: Runner,
    artifact: Runner,
    vset: ValidationSet,
    batch_sizes: list[int],
    sequence_lengths: list[int],
    plan: TimingPlan,
    gates: Sequence[SpeedGate] = (),
    on_shape: Callable[[ShapeResult], None] | None = None,
) -> list[ShapeResult]:
    """Time source and artifact on one device at every (batch size, sequence length).

    Args:
        source / artifact: activated runners on the same device with the same thread count.
        vset: real inputs, reshaped per shape with :meth:`ValidationSet.shaped`.
        sequence_lengths: lengths to time token inputs at; a model that fixes its length
            (:attr:`ValidationSet.fixed_length`) is timed at that length only, and one that takes a
            range of lengths at each requested length clamped into it
            (:meth:`ValidationSet.model_length`): the shape records the length really timed (a
            speed gate at a length the model cannot take then reads "shape not benchmarked").
        plan: the timing protocol (:class:`TimingPlan`).
        gates: the recipe's speed gates; those read at a shape get more rounds while inconclusive.
        on_shape: optional callback ``(ShapeResult) -> None`` for progress display.
    """
    results = []
    token_inputs = bool(vset.pad_values)
    lengths: list[int | None] = (
        list(dict.fromkeys(vset.model_length(s) for s in sequence_lengths)) if token_inputs else [None]
    )
    for seq in lengths:
        for batch in batch_sizes:
            feeds = vset.shaped(batch, seq)
            thresholds = [g.min for g in gates if gate_reads(g, source.device, batch, seq, lengths[0])]
            result = measure_shape(source, artifact, feeds, batch, seq, plan, thresholds)
            results.append(result)
            if on_shape:
                on_shape(result)
    return results


def own_process(runner: Runner) -> int | None:
    """The id of the process ``runner`` executes in when it is not this one (the source's worker),
    else None."""
    import os

    pid = runner.process_id()
    return pid if pid != os.getpid() else None


def start_peak_memory(source: Runner) -> bool:
    """Reset the source process's peak resident set before the benchmark step (see
    :mod:`optkit.validation.peak_memory`); False when it has no process of its own or the reset is refused."""
    pid = own_process(source)
    return pid is not None and reset_peak(pid)


def time_workloads(
    report: SpeedReport,
    source: Runner,
    artifact: OrtRunner,
    vset: ValidationSet,
    bench: BenchmarkConfig,
    workdir: Path,
    reset_done: bool,
    message: Callable[[str], None] = lambda text: None,
) -> None:
    """Add the real workloads to ``report`` after the fixed shapes (CPU): the real-length throughput
    at each batch size (``bench.real_length``), the artifact's batch-size scan
    (``bench.scan_max_batch``), and each runner's own peak memory; their warnings go to
    ``report.warnings``.

    Args:
        report: the report the fixed shapes were recorded in.
        source / artifact: the activated CPU runners of the fixed shapes.
        vset: the validation set.
        bench: the recipe's benchmark section.
        workdir: a private folder (the artifact's peak-memory child reads its inputs there).
        reset_done: what :func:`start_peak_memory` returned before the fixed shapes.
        message: progress lines.

    Raises:
        DataError: a runner rejected a real batch (from the runner).
    """
    clock = time.perf_counter()
    for batch in bench.batch_sizes if bench.real_length else []:
        message(f"real-length throughput, batch {batch}")
        result = measure_real_length(source, artifact, vset, batch, bench.rounds, bench.real_length_batches)
        report.real_length.append(result)
        report.warnings += [
            f"real lengths, batch {batch}: {w}" for w in (result.noise.warnings if result.noise else [])
        ]
    clock = _lap(report, "real lengths", clock)
    lengths = [vset.model_length(s) for s in bench.sequence_lengths] if vset.pad_values else [None]
    if bench.scan_max_batch:
        message(f"batch-size scan of the artifact, up to {bench.scan_max_batch}")
        report.batch_scan = scan_batch_sizes(
            artifact, vset, bench.scan_max_batch, lengths[0], budget_s=bench.scan_budget_s
        )
    clock = _lap(report, "batch scan", clock)
    longest = max(lengths, key=lambda n: n or 0)
    feeds = vset.shaped(max(bench.batch_sizes), longest)
    report.peak_memory = {
        "source": worker_peak(own_process(source), reset_done),
        "artifact": artifact_peak(
            artifact.model_path,
            artifact.threads,
            artifact.device,
            feeds,
            workdir,
            artifact.settings.model_dump(mode="json"),  # the serving settings, when tune-session chose some
        ),
    }
    _lap(report, "peak memory", clock)
    report.warnings += [
        f"peak memory of the {side}: {record.error}" for side, record in report.peak_memory.items() if record.error
    ]


def _lap(report: SpeedReport, part: str, since: float) -> float:
    """Record the wall seconds of ``part`` since ``since`` in ``report.workload_seconds``; the new start."""
    now = time.perf_counter()
    report.workload_seconds[part] = round(now - since, 2)
    return now
