"""How the int8 search ranks its passing candidates (optkit.search.ranking, and its use in
int8_search): speed-ups with bootstrap intervals over alternating rounds, a near-tie to the more
accurate candidate, then search order. Synthetic timings only (search_fakes.noisy/steady): no
ONNX Runtime session is timed and no assertion reads a clock."""

from __future__ import annotations

import math

import pytest
from search_fakes import FakeEvaluator, chain, config, context, noisy, save, steady

import optkit.search.int8_search as int8_search
from optkit.search.ranking import Contender, rank
from optkit.validation.stats import speedup_interval

FOUR_SETTINGS = {"weight_types": ["qint8", "quint8"], "per_channel": [True, False], "reduce_range": [False]}
#: the fp32 input's timings in every run below: 20 ms, rounds scaled up to ±30 %
REFERENCE = noisy(20.0, 0.3, shift=4)


def _seconds(blocks):
    return [[ms / 1e3 for ms in block] for block in blocks]


#: the ranking decides only between candidates that are not fully quantized (the first fully
#: quantized one that passes ends the search): here candidate 1, the one setting, fails, and 2-5
#: are the node probes of an 8-MatMul chain (each keeps one node in fp32)
PROBES = {"fallback_probes": 4}
NAMES = [f"n{i}" for i in range(8)]


def _run(tmp_path, accuracy, timings, lines=None, zero_gate=False, **space):
    """The search on an 8-MatMul chain whose candidates 2-5 are node probes; ``accuracy``
    ``{id: cosine}`` (others fail) and ``timings`` ``{id: blocks in ms}`` (the fp32 input gets
    :data:`REFERENCE`)."""
    model = save(chain(NAMES), tmp_path / "in.onnx")

    def rule(view):
        return (1.0, 20.0) if view.id == 0 else (accuracy.get(view.id, 0.5), 10.0)

    evaluator = FakeEvaluator(rule, timings={0: REFERENCE, **timings}, zero_gate=zero_gate)
    outcome = int8_search.search(model, config(**PROBES, **space), context(tmp_path, evaluator, lines))
    return outcome.search.model_dump(), evaluator


# ---------------------------------------------------------------------------- the rule itself
def test_a_clearly_faster_candidate_wins_over_a_more_accurate_one():
    ref = _seconds(REFERENCE)
    slow_accurate = Contender(1, margins=(0.9,), blocks=_seconds(noisy(10.0, 0.05)))
    fast = Contender(2, margins=(0.1,), blocks=_seconds(noisy(5.0, 0.05)))
    found = rank(ref, [slow_accurate, fast], tolerance=0.05)
    assert found.chosen == 2 and found.fastest == 2 and found.tied == [2]
    low, high = found.ranked[0].estimate, found.ranked[1].estimate
    assert low.ci_high < high.ci_low  # the intervals are apart: timing decides
    assert high.ratio == pytest.approx(speedup_interval(ref, fast.blocks).ratio)


def test_overlapping_intervals_go_to_the_more_accurate_candidate_even_with_zero_tolerance():
    ref = _seconds(REFERENCE)
    fast = Contender(1, margins=(0.1,), blocks=_seconds(noisy(10.0, 0.3, shift=0)))
    accurate = Contender(2, margins=(0.5,), blocks=_seconds(noisy(10.8, 0.3, shift=2)))
    found = rank(ref, [fast, accurate], tolerance=0.0)
    a, b = (r.estimate for r in found.ranked)
    assert a.ratio > b.ratio and b.ci_high >= a.ci_low  # 1 is faster on the point, not beyond noise
    assert found.fastest == 1 and found.tied == [1, 2] and found.chosen == 2


def test_equal_margins_in_a_near_tie_go_to_the_earliest_and_nan_ranks_last():
    ref = _seconds(steady(20.0))
    same = [Contender(i, margins=(0.2,), blocks=_seconds(steady(10.0))) for i in (3, 1, 2)]
    assert rank(ref, same, tolerance=0.0).chosen == 1
    with_nan = [Contender(1, (math.nan,), _seconds(steady(10.0))), Contender(2, (-0.5,), _seconds(steady(10.0)))]
    assert rank(ref, with_nan, tolerance=0.0).chosen == 2


def test_accuracy_is_compared_worst_margin_first_then_the_next_worst():
    # a gate at its threshold for both (nonfinite_outputs <= 0 at 0) leaves the worst margins equal
    ref, blocks = _seconds(steady(20.0)), _seconds(steady(10.0))
    first = Contender(1, margins=(0.0, 0.47, 0.125), blocks=blocks)
    second = Contender(2, margins=(0.35, 0.0, 0.787), blocks=blocks)
    assert rank(ref, [first, second], tolerance=0.0).chosen == 2  # [0, 0.35, 0.79] > [0, 0.125, 0.47]
    lower_worst = Contender(3, margins=(-0.1, 5.0, 5.0), blocks=blocks)
    assert rank(ref, [first, lower_worst], tolerance=0.0).chosen == 1  # the worst margin comes first


def test_the_latency_tolerance_ties_candidates_whose_intervals_are_apart():
    ref = _seconds(steady(20.0))
    fast, close = Contender(1, (0.1,), _seconds(steady(10.0))), Contender(2, (0.5,), _seconds(steady(10.4)))
    assert rank(ref, [fast, close], tolerance=0.05).chosen == 2  # 10.4 <= 10 * 1.05 + 0.05
    assert rank(ref, [fast, close], tolerance=0.01).chosen == 1  # 10.4 > 10 * 1.01 + 0.05


def test_the_same_timings_always_give_the_same_ranking():
    ref = _seconds(REFERENCE)
    contenders = [Contender(i, (0.1 * i,), _seconds(noisy(9.0 + i, 0.25, shift=i))) for i in range(1, 5)]
    first, second = rank(ref, contenders, 0.05), rank(ref, contenders, 0.05)
    assert first == second


@pytest.mark.parametrize(
    ("contenders", "tolerance", "message"),
    [
        ([], 0.05, "no contender"),
        ([Contender(1, (0.1,), [[0.01]] * 5)], -0.1, "tolerance"),
        ([Contender(1, (0.1,), [[0.01]] * 4)], 0.05, "rounds"),  # not timed in the reference's rounds
        ([Contender(1, (0.1,), [[0.01], [0.0], [0.01], [0.01], [0.01]])], 0.05, "finite and > 0"),
    ],
)
def test_bad_rankings_are_refused(contenders, tolerance, message):
    with pytest.raises(ValueError, match=message):
        rank([[0.02]] * 5, contenders, tolerance)


# ---------------------------------------------------------------------------- in the search
def test_the_search_chooses_the_clearly_faster_and_records_every_interval(tmp_path):
    lines: list[str] = []
    timings = {2: noisy(10.0, 0.05), 3: noisy(5.0, 0.05), 4: noisy(10.0, 0.05)}
    found, fake = _run(tmp_path, {2: 0.9999, 3: 0.991, 4: 0.999}, timings, lines)
    assert found["chosen"] == 3 and fake.retimed == [[0, 2, 3, 4]]
    rows = {r["id"]: r for r in found["candidates"]}
    for i in (2, 3, 4):
        assert rows[i]["speedup"]["ci_low"] <= rows[i]["speedup"]["ratio"] <= rows[i]["speedup"]["ci_high"]
        assert rows[i]["speedup"]["rounds"] == int8_search.RANK_ROUNDS
    assert rows[3]["speedup"]["ratio"] == pytest.approx(4.0, rel=0.05)
    assert [rows[i]["speedup"]["near_tie"] for i in (2, 3, 4)] == [False, True, False]
    assert rows[5]["speedup"] is None  # failed: never timed
    assert any(line.startswith("speed-up of candidate 3 over candidate 0: ") and "(fastest)" in line for line in lines)


def test_the_search_gives_a_near_tie_to_the_more_accurate_candidate(tmp_path):
    timings = {2: noisy(10.0, 0.3, shift=0), 3: noisy(10.8, 0.3, shift=2)}
    found, _ = _run(tmp_path, {2: 0.991, 3: 0.9999}, timings, latency_tolerance=0.0)
    assert found["ranking"]["fastest"] == 2 and found["ranking"]["tied"] == [2, 3]
    assert found["chosen"] == 3
    assert [r["verdict"] for r in found["candidates"]][:4] == ["reference", "failed", "passed", "chosen"]


def test_a_gate_every_candidate_meets_at_its_threshold_does_not_hide_the_accuracy_difference(tmp_path):
    # the NER recipes' nonfinite_outputs <= 0 gives every candidate a worst margin of 0
    timings = {2: noisy(10.0, 0.3, shift=0), 3: noisy(10.8, 0.3, shift=2)}
    found, _ = _run(tmp_path, {2: 0.991, 3: 0.9999}, timings, zero_gate=True, latency_tolerance=0.0)
    assert [r["margin"] for r in found["candidates"][2:4]] == [0.0, 0.0]
    assert found["ranking"]["tied"] == [2, 3] and found["chosen"] == 3  # decided by the cosine gate


def test_two_runs_with_the_same_timings_choose_the_same_and_record_the_same(tmp_path):
    timings = {i: noisy(9.0 + i / 2, 0.25, shift=i) for i in (2, 3, 4, 5)}
    accuracy = {2: 0.992, 3: 0.9995, 4: 0.999, 5: 0.9991}
    first, _ = _run(tmp_path / "one", accuracy, timings)
    second, _ = _run(tmp_path / "two", accuracy, timings)
    assert first["chosen"] == second["chosen"]
    assert first["ranking"] == second["ranking"]
    assert [r["speedup"] for r in first["candidates"]] == [r["speedup"] for r in second["candidates"]]


def _probes(tmp_path, best, **fake):
    """Candidate 1 fails, the node probes 2-5 pass with the fastest calls ``best`` ``{id: ms}``."""
    model = save(chain(NAMES), tmp_path / "in.onnx")

    def rule(view):
        return (1.0 if view.id == 0 else 0.5 if view.id == 1 else 0.999), best[view.id]

    evaluator = FakeEvaluator(rule, **fake)
    return model, evaluator


def test_only_the_fastest_few_by_their_scoring_call_are_timed(tmp_path, monkeypatch):
    monkeypatch.setattr(int8_search, "MAX_TIMED", 2)
    model, fake = _probes(tmp_path, {0: 20.0, 1: 1.0, 2: 9.0, 3: 4.0, 4: 8.0, 5: 3.0})
    found = int8_search.search(model, config(**PROBES), context(tmp_path, fake)).search
    assert fake.retimed == [[0, 3, 5]]  # the two fastest, in search order
    assert found.ranking is not None and found.ranking.timed == [3, 5] and found.chosen == 5
    assert found.candidates[2].speedup is None


def test_a_timing_failure_falls_back_to_the_fastest_scoring_call(tmp_path):
    best = {0: 20.0, 1: 1.0, 2: 9.0, 3: 4.0, 4: 8.0, 5: 6.0}
    model, fake = _probes(tmp_path, best, fail_timing=RuntimeError("session gone\nmore"))
    lines: list[str] = []
    found = int8_search.search(model, config(**PROBES), context(tmp_path, fake, lines)).search
    assert found.chosen == 3 and found.ranking is None
    assert "ranking timing failed (RuntimeError: session gone); choosing by the fastest scoring call" in lines


def test_a_full_disk_while_timing_ends_the_search(tmp_path):
    import errno

    model = save(chain(["a", "b"]), tmp_path / "in.onnx")
    fake = FakeEvaluator(lambda view: (0.999, 5.0), fail_timing=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError, match="No space left"):
        int8_search.search(model, config(**FOUR_SETTINGS), context(tmp_path, fake))
