"""The speed-up interval and the verdict on synthetic timings (no timed test: every figure is drawn
from a seeded RNG)."""

import itertools
import math

import numpy as np
import pytest

from optkit.validation.stats import (
    MIN_ROUNDS,
    expanded_tail,
    speedup_interval,
    t_quantile,
    variation,
    verdict,
)


def synth(seed, ratio=2.0, rounds=5, calls=20, call_sigma=0.05, round_sigma=0.05):
    """Lognormal call times (s) of an artifact at 10 ms and a source ``ratio`` times slower; each
    round of each runner is scaled by its own random factor (a neighbour's load), each call too."""
    rng = np.random.default_rng(seed)
    noise = lambda: np.exp(rng.normal(0, round_sigma, (rounds, 1)) + rng.normal(0, call_sigma, (rounds, calls)))  # noqa: E731
    return (0.010 * ratio * noise()).tolist(), (0.010 * noise()).tolist()


def test_the_interval_covers_a_known_ratio_under_noise():
    estimate = speedup_interval(*synth(0))
    assert estimate.ci_low < 2.0 < estimate.ci_high
    assert estimate.ci_low <= estimate.ratio <= estimate.ci_high and estimate.rounds == 5
    assert 0 < estimate.ci_high - estimate.ci_low < 1.0  # informative, not [0, inf]


def test_coverage_of_the_known_ratio_is_near_95_percent():
    """Over 60 independent noisy data sets the interval holds the true ratio in >= 90 % of them
    (the plain percentile interval's 89 % at 5 rounds is why the tails are expanded)."""
    covered = sum(e.ci_low <= 2.0 <= e.ci_high for e in (speedup_interval(*synth(seed)) for seed in range(60)))
    assert covered >= 54


@pytest.mark.parametrize("busy", [b for n in range(1, 5) for b in itertools.combinations(range(5), n)])
def test_a_bimodal_noisy_source_is_never_a_wrong_pass(busy):
    """Quiet speed-up 1.0, a 1.2x gate; a neighbour makes the source 4x slower in some rounds (any
    1 to 4 of 5). The interval then straddles the threshold: inconclusive, never passed."""
    rng = np.random.default_rng(len(busy))
    source = [(0.010 * (4.0 if r in busy else 1.0) * np.exp(rng.normal(0, 0.02, 20))).tolist() for r in range(5)]
    artifact = [(0.010 * np.exp(rng.normal(0, 0.02, 20))).tolist() for _ in range(5)]
    estimate = speedup_interval(source, artifact)
    assert verdict(estimate.ci_low, estimate.ci_high, 1.2) == "inconclusive"


def test_a_consistent_speedup_passes_and_a_consistent_slowdown_fails():
    fast = speedup_interval(*synth(1, ratio=2.0, call_sigma=0.02, round_sigma=0.01))
    slow = speedup_interval(*synth(1, ratio=0.8, call_sigma=0.02, round_sigma=0.01))
    assert verdict(fast.ci_low, fast.ci_high, 1.2) == "passed"
    assert verdict(slow.ci_low, slow.ci_high, 1.2) == "failed"


def test_same_timings_give_the_same_interval():
    timings = synth(3)
    assert speedup_interval(*timings) == speedup_interval(*timings)
    other = speedup_interval(*timings, seed=7)
    assert other.ratio == speedup_interval(*timings).ratio  # the point does not depend on the seed


def test_the_ratio_is_the_pooled_p50_ratio():
    source, artifact = [[3.0, 4.0, 5.0]] * 3, [[1.0, 2.0, 3.0]] * 3
    estimate = speedup_interval(source, artifact)
    assert estimate.ratio == pytest.approx(2.0) and estimate.ci_low == estimate.ci_high == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (1.2, 1.5, "passed"),  # the whole interval at or above the threshold
        (1.3, 1.5, "passed"),
        (1.1, 1.2, "inconclusive"),  # touches the threshold from below: not wholly below
        (1.1, 1.3, "inconclusive"),
        (1.0, 1.1999, "failed"),
        (1.2, 1.2, "passed"),
        (math.nan, 1.5, "inconclusive"),
        (1.0, math.nan, "inconclusive"),
    ],
)
def test_verdict_boundaries(low, high, expected):
    assert verdict(low, high, 1.2) == expected


def test_verdict_refuses_a_reversed_interval():
    with pytest.raises(ValueError, match="not an interval"):
        verdict(1.5, 1.2, 1.0)


@pytest.mark.parametrize(
    ("source", "artifact", "match"),
    [
        ([[1.0]] * 2, [[1.0]] * 2, "at least 3 rounds"),
        ([[1.0]] * 3, [[1.0]] * 4, "same rounds"),
        ([[1.0, 1.0], [1.0]], [[1.0]] * 2, "same number of calls"),
        ([[1.0], [], [1.0]], [[1.0]] * 3, "at least one timed call"),
        ([], [], "at least one timed call"),
        ([[1.0], [math.nan], [1.0]], [[1.0]] * 3, "finite and > 0"),
        ([[1.0], [math.inf], [1.0]], [[1.0]] * 3, "finite and > 0"),
        ([[1.0]] * 3, [[1.0], [0.0], [1.0]], "finite and > 0"),
        ([[1.0]] * 3, [[1.0], [-1.0], [1.0]], "finite and > 0"),
    ],
)
def test_hostile_timings_are_refused(source, artifact, match):
    with pytest.raises(ValueError, match=match):
        speedup_interval(source, artifact)


@pytest.mark.parametrize(("kwargs", "match"), [({"confidence": 1.0}, "confidence"), ({"resamples": 10}, "resamples")])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        speedup_interval([[1.0]] * 3, [[1.0]] * 3, **kwargs)


def test_min_rounds_is_enforced_at_its_value():
    speedup_interval([[1.0]] * MIN_ROUNDS, [[1.0]] * MIN_ROUNDS)  # no error at the minimum


@pytest.mark.parametrize(("dof", "exact"), [(2, 4.302653), (4, 2.776445), (9, 2.262157), (100, 1.983972)])
def test_t_quantile_is_close_to_the_exact_value(dof, exact):
    assert t_quantile(0.975, dof) == pytest.approx(exact, rel=0.031 if dof == 2 else 0.003)


def test_expanded_tail_widens_the_plain_percentiles_and_tends_to_them():
    assert expanded_tail(0.95, 5) == pytest.approx(0.00097, abs=0.0001)
    assert expanded_tail(0.95, 5) < expanded_tail(0.95, 15) < 0.025
    assert expanded_tail(0.95, 10_000) == pytest.approx(0.025, abs=0.0005)


def test_variation():
    assert variation([10.0, 10.0, 10.0]) == 0.0
    assert variation([9.0, 11.0]) == pytest.approx(np.std([9.0, 11.0], ddof=1) / 10.0)
    assert variation([5.0]) == 0.0
    with pytest.raises(ValueError):
        variation([1.0, math.nan])
