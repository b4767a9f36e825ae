"""The recipe config of the ``tune-session`` pass (its ``run`` is :mod:`optkit.passes.tune_session`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from optkit.strict import StrictModel

Factor = Literal["intra_op_threads", "execution_mode", "graph_optimization_level", "spinning", "memory_arena"]
"""A session option the search varies (one at a time, from the default; see :mod:`optkit.passes.tune_session`)."""

FACTORS: tuple[Factor, ...] = (
    "intra_op_threads",
    "execution_mode",
    "graph_optimization_level",
    "spinning",
    "memory_arena",
)


class TuneSessionPass(StrictModel):
    """Search ONNX Runtime CPU session settings (intra-op threads up to runtime.threads, parallel
    execution, graph optimisation level, thread spinning, memory arena), one factor at a time from
    the default, each timed against the default in alternating rounds with a 95 % bootstrap interval.
    A candidate replaces the default only when its whole interval is above 1; the chosen settings
    become the artifact's serving configuration (session.json, manifest `serving`) and the rest of
    the run (validation, benchmark) uses them. Must be the last pass; leaves the model unchanged."""

    type: Literal["tune-session"] = Field(description="selects this pass: ONNX Runtime session settings search")
    factors: list[Factor] = Field(
        default_factory=lambda: list(FACTORS),
        min_length=1,
        description="the session options varied, one at a time from the default: intra_op_threads "
        "(1, 2, 4, … below runtime.threads), execution_mode (parallel with intra × inter ≤ runtime.threads), "
        "graph_optimization_level (basic, extended), spinning (off), memory_arena (off)",
    )
    batch_size: int | None = Field(
        None, ge=1, description="batch size the candidates are timed at; null = the first CPU speed gate's shape"
    )
    sequence_length: int | None = Field(
        None, ge=1, description="tokens per sample for token inputs; null = the first CPU speed gate's shape"
    )
    warmup: int = Field(3, ge=0, description="untimed calls before each runner's first block")
    iterations: int = Field(20, ge=1, description="timed calls per block")
    rounds: int = Field(5, ge=3, description="alternating rounds (default block, candidate block) per candidate")
    max_rounds: int = Field(
        10, ge=3, description="the most rounds for a candidate while its interval straddles 1 (>= rounds)"
    )
    on_busy_machine: Literal["keep-default", "use"] = Field(
        "keep-default",
        description="when other processes used more than 0.25 cores while the winner was timed: keep the "
        "default (a setting that wins under load, typically fewer threads, may lose when served) or use "
        "the winner anyway",
    )
    budget_s: float = Field(
        60.0,
        gt=0,
        description="seconds for the whole search, checked before each candidate (one that has started "
        "finishes its `rounds`); candidates not reached in time are recorded as not timed",
    )

    @model_validator(mode="after")
    def _rounds(self) -> TuneSessionPass:
        if self.max_rounds < self.rounds:
            raise ValueError(f"max_rounds ({self.max_rounds}) must be >= rounds ({self.rounds})")
        if len(set(self.factors)) != len(self.factors):
            raise ValueError(f"factors lists an option twice: {self.factors}")
        return self
