"""How busy the machine was while a shape was timed: load average, CPU used by other processes, CPU
frequency and the run-to-run spread, with a warning when the figures are likely disturbed.

Thresholds (docs/benchmarks.md, "How speed verdicts are decided"):

- :data:`OTHERS_CORES_WARN`: other processes used more than a quarter of one core on average over
  the timing window (system-wide busy CPU time minus the CPU time of optkit's own process tree,
  the confined worker included, divided by the window's wall time).
- :data:`CV_WARN`: the per-round medians of either runner vary by more than 10 % (coefficient of
  variation, the threshold pyperf's ``check`` command uses for "unstable" benchmarks).

The load average and the CPU frequency are recorded but not warned on by themselves: the load
average counts optkit's own timing threads, and CPU governors lower the clock of idle cores.

**Contended rounds.** Each round of timing (a source block and an artifact block) gets its own
reading of other processes' CPU use. A round is *contended* when other processes used more cores
than the timing could spare them: ``others_cores > spare_cores + OTHERS_CORES_WARN``, where
``spare_cores`` = the cores this process may run on (``os.sched_getaffinity``) minus the runners'
thread count. Speed-ups measured in such rounds are biased, not merely noisy: on a 2-core machine
with two busy neighbours the confined PyTorch worker (an OpenMP pool that waits at every barrier
for a descheduled thread) slowed ~50x while ONNX Runtime slowed ~9x, and a bootstrap over such rounds
gave a tight interval around 9.2x for a 1.7-2x model (docs/benchmarks.md, "Speed verdicts under
load"). So :func:`optkit.validation.speed.measure_shape` computes a gate's interval from the
uncontended rounds only, and a gate with too few of them is ``inconclusive``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

#: other processes' average CPU use (cores) over a timing window above which a warning is given
OTHERS_CORES_WARN = 0.25
#: coefficient of variation of per-round medians above which a warning is given
CV_WARN = 0.10

_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")


@dataclass
class NoiseRecord:
    """The machine's state around one timed shape.

    Attributes:
        load_before / load_after: 1-minute load average (runnable processes) before and after
            timing (``os.getloadavg``); None where unavailable.
        others_cores: average CPU used by other processes during timing, in cores (1.0 = one core
            fully busy); None when psutil could not read the CPU times.
        cpu_freq_mhz / cpu_freq_max_mhz: current and maximum CPU clock (``psutil.cpu_freq``), MHz;
            None where unreadable (many VMs and containers).
        cv_source / cv_artifact: coefficient of variation of each runner's per-round p50.
        window_s: wall time of the timing window, seconds.
        warnings: why the figures may be disturbed (empty on a quiet machine).
        round_others_cores: other processes' CPU use (cores) during each round, in timing order
            (None where unreadable).
        spare_cores: cores the timing left free for others (usable cores minus runner threads).
        contended_rounds: indices of the rounds in which others used more than the spare cores
            (see the module docstring); their timings decide no gate.
    """

    load_before: float | None = None
    load_after: float | None = None
    others_cores: float | None = None
    cpu_freq_mhz: float | None = None
    cpu_freq_max_mhz: float | None = None
    cv_source: float = 0.0
    cv_artifact: float = 0.0
    window_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    round_others_cores: list[float | None] = field(default_factory=list)
    spare_cores: float = 0.0
    contended_rounds: list[int] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        """True when a threshold was crossed (see the module docstring)."""
        return bool(self.warnings)

    def summary(self) -> str:
        """A short phrase for a gate's reason, e.g. ``"the machine was busy (load 3.1, others 1.60 cores)"``."""
        parts = []
        if self.load_after is not None:
            parts.append(f"load {self.load_after:.1f}")
        if self.others_cores is not None:
            parts.append(f"others {self.others_cores:.2f} cores")
        parts.append(f"round-to-round CV {max(self.cv_source, self.cv_artifact):.0%}")
        return f"the machine was {'busy' if self.busy else 'quiet'} ({', '.join(parts)})"


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not on every platform
        return None


def _busy_seconds(times: Any) -> float:
    return float(sum(getattr(times, name, 0.0) for name in _BUSY_FIELDS))


def _tree_seconds() -> dict[int, float]:
    """CPU seconds (user + system) of this process and each of its live descendants, by pid."""
    import psutil

    me = psutil.Process()
    found: dict[int, float] = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            found[proc.pid] = t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def usable_cores() -> int:
    """Cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where absent)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def spare_cores(threads: int) -> float:
    """Cores left for other processes while runners with ``threads`` intra-op threads are timed."""
    return float(max(0, usable_cores() - max(1, threads)))


def is_contended(others_cores: float | None, spare: float) -> bool:
    """True when other processes used more cores than ``spare`` (+ :data:`OTHERS_CORES_WARN`);
    an unreadable reading (None) is not evidence of contention."""
    return others_cores is not None and others_cores > spare + OTHERS_CORES_WARN


def _frequency() -> tuple[float | None, float | None]:
    import psutil

    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, AttributeError, RuntimeError):
        return None, None
    if freq is None:
        return None, None
    current = float(freq.current) if freq.current else None
    return current, (float(freq.max) if freq.max else None)


class NoiseMonitor:
    """Reads the machine's state at :meth:`start` and :meth:`stop` of a timing window.

    Every reading is best effort: an unreadable one is recorded as None, never an error.
    ``clock`` (seconds) is injectable for tests. :meth:`round_started` / :meth:`round_done` read
    other processes' CPU use around each round (:func:`is_contended`).
    """

    def __init__(self, clock: Any = time.monotonic, threads: int = 1) -> None:
        self.clock = clock
        self.record = NoiseRecord(spare_cores=spare_cores(threads))
        self._start: float | None = None
        self._system: float | None = None
        self._tree: dict[int, float] = {}
        self._round: tuple[float, float, dict[int, float]] | None = None

    def _snapshot(self) -> tuple[float, float, dict[int, float]] | None:
        import psutil

        try:
            return self.clock(), _busy_seconds(psutil.cpu_times()), _tree_seconds()
        except (OSError, psutil.Error):
            return None

    def round_started(self) -> None:
        """Read the CPU times at the start of a round."""
        self._round = self._snapshot()

    def round_done(self) -> bool:
        """Close the round; record others' cores during it; True when it was contended."""
        began, now = self._round, self._snapshot()
        others = None
        if began is not None and now is not None and now[0] > began[0]:
            own = sum(t - began[2].get(pid, 0.0) for pid, t in now[2].items())
            others = max(0.0, (now[1] - began[1] - own) / (now[0] - began[0]))
        rec = self.record
        rec.round_others_cores.append(others)
        if is_contended(others, rec.spare_cores):
            rec.contended_rounds.append(len(rec.round_others_cores) - 1)
            return True
        return False

    def start(self) -> None:
        """Record the load, the CPU frequency and the CPU times at the start of the window."""
        import psutil

        self.record.load_before = _load()
        self.record.cpu_freq_mhz, self.record.cpu_freq_max_mhz = _frequency()
        self._start = self.clock()
        try:
            self._system = _busy_seconds(psutil.cpu_times())
            self._tree = _tree_seconds()
        except (OSError, psutil.Error):
            self._system = None

    def stop(self, source_round_ms: list[float], artifact_round_ms: list[float]) -> NoiseRecord:
        """Close the window; ``*_round_ms`` are each runner's per-round p50 (ms). Returns the record
        with its warnings."""
        import psutil

        from optkit.validation.stats import variation

        rec = self.record
        rec.load_after = _load()
        rec.window_s = self.clock() - self._start if self._start is not None else 0.0
        if self._system is not None and rec.window_s > 0:
            try:
                system = _busy_seconds(psutil.cpu_times()) - self._system
                tree_now = _tree_seconds()
                own = sum(now - self._tree.get(pid, 0.0) for pid, now in tree_now.items())
                rec.others_cores = max(0.0, (system - own) / rec.window_s)
            except (OSError, psutil.Error):
                rec.others_cores = None
        rec.cv_source, rec.cv_artifact = variation(source_round_ms), variation(artifact_round_ms)
        rec.warnings = busy_warnings(rec)
        return rec


def busy_warnings(rec: NoiseRecord) -> list[str]:
    """Why ``rec``'s window was likely disturbed, one sentence each (empty when quiet)."""
    found = []
    if rec.others_cores is not None and rec.others_cores > OTHERS_CORES_WARN:
        load = f", load average {rec.load_after:.1f}" if rec.load_after is not None else ""
        found.append(
            f"other processes used {rec.others_cores:.2f} cores on average while timing (> {OTHERS_CORES_WARN:g}{load})"
        )
    if rec.contended_rounds:
        found.append(
            f"{len(rec.contended_rounds)} of {len(rec.round_others_cores)} rounds were timed while other "
            f"processes used more than the {rec.spare_cores:g} spare core(s): those rounds decide no speed gate"
        )
    for runner, cv in (("source", rec.cv_source), ("artifact", rec.cv_artifact)):
        if cv > CV_WARN:
            found.append(f"the {runner}'s per-round p50 varied by {cv:.0%} (CV > {CV_WARN:.0%})")
    return found


__all__ = [
    "CV_WARN",
    "OTHERS_CORES_WARN",
    "NoiseMonitor",
    "NoiseRecord",
    "busy_warnings",
    "is_contended",
    "spare_cores",
    "usable_cores",
]
