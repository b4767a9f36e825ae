"""Latency percentiles of one runner's calls (:class:`LatencyStats`), shared by the fixed-shape
timing (:mod:`optkit.validation.speed`), the batch-size scan (:mod:`optkit.validation.workloads`)
and the searches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LatencyStats:
    """Latency of one runner at one shape (milliseconds; throughput in samples/s).

    Attributes:
        p50_ms / p90_ms / p99_ms: the 50th, 90th and 99th percentiles of the call times (numpy's
            linear interpolation between order statistics); ``p99_ms`` None in records written
            before it was measured.
        mean_ms / min_ms: mean and fastest call.
        throughput: batch size / p50, samples per second.
        iterations: calls summarised.
    """

    p50_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    throughput: float
    iterations: int
    p99_ms: float | None = None

    @classmethod
    def from_seconds(cls, seconds: list[float], batch_size: int) -> LatencyStats:
        """Summarise per-call wall times (seconds) for a batch of ``batch_size`` samples.

        Raises:
            ValueError: no call times.
        """
        if not seconds:
            raise ValueError("no call times to summarise")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        return cls(p50, p90, float(ms.mean()), float(ms.min()), batch_size / (p50 / 1e3), len(ms), p99)
