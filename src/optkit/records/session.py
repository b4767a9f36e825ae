"""The serving configuration: the ONNX Runtime CPU session settings an artifact is served with.

:class:`SessionSettings` is what ``OrtRunner`` builds its ``SessionOptions`` from (see
:func:`optkit.runners.ort_runner.session_options`); :class:`ServingConfig` is what the
``tune-session`` pass chose and measured, written to the artifact's ``session.json`` and to the
manifest's ``serving`` section (both hashed, both covered by ``model.sig``).

Both are strict records (unknown keys are an error, every number bounded), since ``session.json``
is read back by ``optkit verify`` and :func:`optkit.load_session`: a hostile file cannot name a
custom-op library, an unbounded thread count or any option optkit does not set.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from optkit.records.search import Record

ExecutionMode = Literal["sequential", "parallel"]
"""ORT's ``ExecutionMode``: ``ORT_SEQUENTIAL`` or ``ORT_PARALLEL`` (independent nodes on the inter-op pool)."""

OptimizationLevel = Literal["basic", "extended", "all"]
"""ORT's ``GraphOptimizationLevel``: ``ORT_ENABLE_BASIC`` / ``_EXTENDED`` / ``_ALL``."""

#: the most threads a serving configuration may name (a bound for hostile files, not a recommendation)
MAX_THREADS = 1024

SESSION_FILE = "session.json"


class SessionSettings(Record):
    """ONNX Runtime CPU session options (https://onnxruntime.ai/docs/performance/tune-performance/threading.html).

    Attributes:
        intra_op_num_threads: threads of the intra-op pool (one operator's work), >= 1.
        inter_op_num_threads: threads of the inter-op pool (used only in ``parallel`` mode), >= 1.
        execution_mode: ``sequential`` or ``parallel``.
        graph_optimization_level: ``basic``, ``extended`` or ``all``.
        allow_spinning: the session config entry ``session.intra_op.allow_spinning`` (``"1"``/``"0"``):
            idle pool threads spin before sleeping (lower latency, CPU burnt while idle).
        enable_cpu_mem_arena: ``SessionOptions.enable_cpu_mem_arena`` (the CPU allocator's arena).
    """

    intra_op_num_threads: int = Field(ge=1, le=MAX_THREADS)
    inter_op_num_threads: int = Field(1, ge=1, le=MAX_THREADS)
    execution_mode: ExecutionMode = "sequential"
    graph_optimization_level: OptimizationLevel = "all"
    allow_spinning: bool = True
    enable_cpu_mem_arena: bool = True

    @classmethod
    def default(cls, threads: int) -> SessionSettings:
        """optkit's default session (what every ``OrtRunner`` used before tuning): ``threads``
        intra-op threads, one inter-op thread, sequential, ORT_ENABLE_ALL, spinning on, arena on."""
        return cls(intra_op_num_threads=threads)

    @property
    def threads_used(self) -> int:
        """Threads the session may keep busy at once: intra × inter in parallel mode, intra otherwise."""
        if self.execution_mode == "parallel":
            return self.intra_op_num_threads * self.inter_op_num_threads
        return self.intra_op_num_threads

    def label(self) -> str:
        """One line for the terminal and the report, e.g. ``intra 2, sequential, opt all, spin on, arena on``."""
        threads = f"intra {self.intra_op_num_threads}"
        if self.execution_mode == "parallel":
            threads += f" × inter {self.inter_op_num_threads}"
        on = {True: "on", False: "off"}
        return (
            f"{threads}, {self.execution_mode}, opt {self.graph_optimization_level}, "
            f"spin {on[self.allow_spinning]}, arena {on[self.enable_cpu_mem_arena]}"
        )


class GainRecord(Record):
    """A measured speed-up of one session setting over the default (default p50 / candidate p50,
    > 1: faster) with its bootstrap interval over rounds (:func:`optkit.validation.stats.speedup_interval`)."""

    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    rounds: int


class SessionCandidate(Record):
    """One candidate of the search: what it changes from the default (``change``), its settings,
    its gain (None when it was not timed), the CPU other processes used while it was timed
    (``others_cores``, cores; None when unread) and why it was not timed or failed to load (``note``)."""

    change: str
    settings: SessionSettings
    gain: GainRecord | None = None
    others_cores: float | None = None
    note: str = ""


class ServingConfig(Record):
    """The serving configuration of an artifact (``session.json``; the manifest's ``serving``).

    Attributes:
        settings: the session settings the artifact was validated, benchmarked and is served with.
        tuned: True when a candidate replaced the default (its whole interval above 1).
        change: what the chosen settings change from the default (``"default"`` when none won).
        gain: the chosen candidate's gain over the default (None when the default was kept).
        reason: one line: why these settings (``"no setting beat the default"``, ...).
        threads_budget: the run's ``runtime.threads``; no candidate used more threads than this.
        batch_size / sequence_length: the shape the candidates were timed at.
        candidates: every candidate, in the order tried.
    """

    settings: SessionSettings
    tuned: bool
    change: str
    gain: GainRecord | None = None
    reason: str
    threads_budget: int = Field(ge=1, le=MAX_THREADS)
    batch_size: int = Field(ge=1)
    sequence_length: int | None = None
    candidates: list[SessionCandidate] = []


__all__ = [
    "MAX_THREADS",
    "SESSION_FILE",
    "ExecutionMode",
    "GainRecord",
    "OptimizationLevel",
    "ServingConfig",
    "SessionCandidate",
    "SessionSettings",
]
