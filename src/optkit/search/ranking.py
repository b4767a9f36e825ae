"""How the int8 search picks among its passing candidates: speed-ups with confidence intervals over
alternating rounds, a near-tie to the more accurate candidate, then search order.

The passing candidates and a common reference (the search's fp32 input) are timed together in
alternating rounds, one block of calls each per round
(:meth:`~optkit.search.evaluator.CandidateEvaluator.time_rounds`), the protocol of the speed gates
(:mod:`optkit.validation.speed`). Each candidate's speed-up over the reference is the ratio of pooled
medians with the speed gates' 95 % bootstrap interval over rounds
(:func:`optkit.validation.stats.speedup_interval`: rounds are resampled with the candidate's and the
reference's blocks of a round kept together).

Rule (:func:`rank`):

1. the **fastest** is the candidate with the largest speed-up (the earliest in search order on an
   exact tie);
2. a candidate is in a **near-tie** with it when their intervals overlap (``ci_high`` of the
   candidate >= ``ci_low`` of the fastest), or when its pooled median is within ``tolerance`` of
   the fastest's (``latency_tolerance``, relative) plus :data:`TIMER_FLOOR_MS`: timing cannot tell
   such candidates apart;
3. among the near-tie the **most accurate** wins: each candidate's normalised margins to the
   thresholds of the recipe's accuracy gates (:func:`~optkit.search.evaluator.gate_margin`) are
   sorted from worst to best and compared in that order (leximin): the largest worst margin wins,
   an equal worst margin goes to the larger second-worst, and so on. (The worst margin alone does
   not separate candidates when a gate sits at its threshold for all of them, e.g.
   ``nonfinite_outputs <= 0`` at 0.) The margins are deterministic for the same model, data and
   recipe;
4. equal margins throughout go to the **earliest in search order** (smallest id).

Only steps 1–2 read timings; a candidate that is clearly slower (its interval entirely below the
fastest's, and beyond the tolerance) can never be chosen, and among candidates timing cannot
separate the choice does not depend on timing at all, so two runs on a quiet machine choose the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from optkit.validation.stats import RatioEstimate, speedup_interval

#: candidates whose pooled medians are closer than this (ms) always tie: sub-millisecond models time
#: within timer and cache noise
TIMER_FLOOR_MS = 0.05


@dataclass(frozen=True)
class Contender:
    """A passing candidate to rank.

    Attributes:
        id: its candidate id (search order; smaller = earlier).
        margins: its normalised margin to each accuracy gate's threshold, any order (larger = more
            accurate; +inf for a skipped gate, NaN ranks as -inf); every contender has the recipe's
            same gates.
        blocks: its call times in seconds, shape (rounds, calls per block), timed in the same
            rounds as the reference.
    """

    id: int
    margins: tuple[float, ...]
    blocks: Sequence[Sequence[float]]


@dataclass(frozen=True)
class Ranked:
    """One contender's timing figures.

    Attributes:
        id: the candidate id.
        estimate: speed-up over the reference (reference p50 / candidate p50, ×) with its interval.
        p50_ms: pooled median call time over every round (ms).
        best_ms: the fastest call of every round (ms).
    """

    id: int
    estimate: RatioEstimate
    p50_ms: float
    best_ms: float


@dataclass(frozen=True)
class Ranking:
    """The outcome of :func:`rank`.

    Attributes:
        chosen: id of the chosen candidate.
        fastest: id of the candidate with the largest speed-up.
        tied: ids in a near-tie with the fastest (the fastest included), in search order.
        ranked: every contender's figures, in the order given.
    """

    chosen: int
    fastest: int
    tied: list[int]
    ranked: list[Ranked]


def rank(
    reference: Sequence[Sequence[float]],
    contenders: Sequence[Contender],
    tolerance: float,
    floor_ms: float = TIMER_FLOOR_MS,
) -> Ranking:
    """Rank ``contenders`` by speed-up over ``reference`` (see the module docstring for the rule).

    Args:
        reference: the reference's call times in seconds, shape (rounds, calls per block).
        contenders: at least one; each timed in the same rounds as ``reference``.
        tolerance: relative latency within which candidates tie whatever their intervals (>= 0).
        floor_ms: absolute latency (ms) within which candidates tie.

    Returns:
        The :class:`Ranking`; the same timings and margins always give the same ranking (the
        bootstrap is seeded).

    Raises:
        ValueError: no contender, a negative tolerance, or timings that
            :func:`~optkit.validation.stats.speedup_interval` rejects (fewer than 3 rounds, ragged
            or non-positive blocks, rounds that do not match the reference's).
    """
    if not contenders:
        raise ValueError("nothing to rank: no contender")
    if tolerance < 0 or floor_ms < 0:
        raise ValueError(f"tolerance and floor must be >= 0, got {tolerance} and {floor_ms}")
    ranked = [
        Ranked(
            c.id,
            speedup_interval(reference, c.blocks),
            float(np.median(np.asarray(c.blocks, dtype=np.float64))) * 1e3,
            float(np.min(np.asarray(c.blocks, dtype=np.float64))) * 1e3,
        )
        for c in contenders
    ]
    fastest = max(ranked, key=lambda r: (r.estimate.ratio, -r.id))
    slack = fastest.p50_ms * tolerance + floor_ms
    tied = sorted(
        r.id for r in ranked if r.estimate.ci_high >= fastest.estimate.ci_low or r.p50_ms <= fastest.p50_ms + slack
    )
    accuracy = {c.id: tuple(sorted(_finite(m) for m in c.margins)) for c in contenders}
    chosen = max(tied, key=lambda i: (accuracy[i], -i))
    return Ranking(chosen, fastest.id, tied, ranked)


def _finite(margin: float) -> float:
    """NaN margins rank last (a NaN compares false with everything, which would make max() depend
    on order)."""
    return float("-inf") if margin != margin else margin


__all__ = ["TIMER_FLOOR_MS", "Contender", "Ranked", "Ranking", "rank"]
