"""Side-by-side latency of the source model and the artifact, measured in the same run.

Method (see docs/benchmarks.md): both runners get the same inputs (real validation samples padded or
truncated to each shape), the same intra-op thread count, ``warmup`` untimed runs each, then
``iterations`` timed runs each, in blocks (all source runs, then all artifact runs): interleaving
them in one process lets one runtime's spinning worker threads (OpenMP, ORT's thread pool) steal
the cores the other needs, which slowed a tiny TorchScript model ~50x in our measurements.
Latency is wall time per call (``time.perf_counter``), reported as the median (p50) and 90th
percentile (p90) in milliseconds; throughput = batch size / p50 in samples per second; speed-up =
source p50 / artifact p50.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optkit import interrupts
from optkit.runners.base import Feeds, Runner
from optkit.validation.data import ValidationSet


@dataclass
class LatencyStats:
    """Latency of one runner at one shape (milliseconds; throughput in samples/s)."""

    p50_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    throughput: float
    iterations: int

    @classmethod
    def from_seconds(cls, seconds: list[float], batch_size: int) -> LatencyStats:
        """Summarise per-call wall times (seconds) for a batch of ``batch_size`` samples."""
        ms = np.asarray(seconds) * 1e3
        p50 = float(np.percentile(ms, 50))
        return cls(
            p50, float(np.percentile(ms, 90)), float(ms.mean()), float(ms.min()), batch_size / (p50 / 1e3), len(ms)
        )


@dataclass
class ShapeResult:
    """Source vs artifact at one (device, batch size, sequence length)."""

    device: str
    batch_size: int
    sequence_length: int | None
    source: LatencyStats
    artifact: LatencyStats

    @property
    def speedup(self) -> float:
        """Source p50 / artifact p50 (> 1 means the artifact is faster)."""
        return self.source.p50_ms / self.artifact.p50_ms


@dataclass
class SpeedReport:
    """Every speed figure of one run.

    Attributes:
        shapes: one entry per (device, batch size, sequence length).
        threads / warmup / iterations: the settings used for both runners.
        load_seconds: ``{"source": s, "artifact": s}``: model load / session creation time.
        rss_growth_mb: ``{"source": MB, "artifact": MB}``: growth of this process's resident set
            while loading the model and running the first batch (psutil; an approximation of the
            model's memory, since both share one process).
        size_mb: ``{"source": MB, "artifact": MB}``: file size on disk (MB = 10^6 bytes; a
            folder counts all its files; the artifact counts its external data file too).
        skipped_devices: ``{device: reason}`` for devices a gate asked for that are absent.
    """

    threads: int
    warmup: int
    iterations: int
    shapes: list[ShapeResult] = field(default_factory=list)
    load_seconds: dict[str, float] = field(default_factory=dict)
    rss_growth_mb: dict[str, float] = field(default_factory=dict)
    size_mb: dict[str, float] = field(default_factory=dict)
    skipped_devices: dict[str, str] = field(default_factory=dict)

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


def benchmark(
    source: Runner,
    artifact: Runner,
    vset: ValidationSet,
    batch_sizes: list[int],
    sequence_lengths: list[int],
    warmup: int,
    iterations: int,
    on_shape=None,
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
            src = time_runner(source, feeds, warmup, iterations)
            art = time_runner(artifact, feeds, warmup, iterations)
            result = ShapeResult(
                source.device, batch, seq, LatencyStats.from_seconds(src, batch), LatencyStats.from_seconds(art, batch)
            )
            results.append(result)
            if on_shape:
                on_shape(result)
    return results
