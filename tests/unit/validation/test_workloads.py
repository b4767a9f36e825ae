"""Real workloads (:mod:`optkit.validation.workloads`): real-length throughput over per-batch padded
batches in alternating rounds, the artifact's batch-size scan, and p99. No timed test: every call
time is scripted by the fake runners."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from optkit.errors import RecipeError
from optkit.recipe import BenchmarkConfig, load_recipe
from optkit.runners.base import Feeds, Runner
from optkit.validation.data import ValidationSet
from optkit.validation.latency import LatencyStats
from optkit.validation.noise import NoiseRecord
from optkit.validation.workloads import (
    ScanPoint,
    best_batch,
    measure_real_length,
    real_batches,
    scan_batch_sizes,
    scan_ladder,
)

LENGTHS = [2, 3, 8, 2, 2, 2, 5]


def token_set() -> ValidationSet:
    """Seven samples padded to 8 tokens: batches of 2 hold at most 3, 8, 2 and 5 real tokens."""
    ids = np.full((7, 8), 7, np.int64)
    mask = np.zeros((7, 8), np.int64)
    for row, n in enumerate(LENGTHS):
        mask[row, :n] = 1
        ids[row, n:] = 0
    return ValidationSet(
        "text", "t.txt", {"input_ids": ids, "attention_mask": mask}, {"input_ids": 0, "attention_mask": 0}
    )


class PerToken(Runner):
    """A runner whose call takes ``ms_per_token`` × batch × length milliseconds (scripted, not
    measured) and that logs every batch it is timed on and every warm-up call."""

    def __init__(self, ms_per_token: float) -> None:
        super().__init__(1)
        self.ms_per_token = ms_per_token
        self.timed: list[Feeds] = []
        self.warm_calls = 0

    def _activate(self) -> None:
        pass

    def _infer(self, feeds: Feeds) -> Feeds:
        return {}

    def time_pass(self, batches: list[Feeds], warm: bool) -> float:
        self.warm_calls += len(batches) if warm else 0
        self.timed += batches
        total = 0.0
        for feeds in batches:
            first = next(iter(feeds.values()))
            total += self.ms_per_token * first.shape[0] * (first.shape[1] if first.ndim > 1 else 1) / 1e3
        return total


class QuietMonitor:
    def start(self) -> None:
        pass

    def stop(self, src: list[float], art: list[float]) -> NoiseRecord:
        return NoiseRecord()


def test_real_batches_are_padded_each_to_its_own_longest_example():
    vset = token_set()
    batches, padding = real_batches(vset, 2, 100)
    assert padding == "per-batch"
    assert [b["input_ids"].shape for b in batches] == [(2, 3), (2, 8), (2, 2), (1, 5)]
    for batch in batches:  # the positions past a sample's real tokens stay masked (and pad-valued)
        real = batch["attention_mask"].sum(axis=1)
        for row, n in enumerate(real):
            assert not batch["attention_mask"][row, n:].any() and not batch["input_ids"][row, n:].any()
    assert [b["input_ids"].shape[1] for b in real_batches(vset, 2, 2)[0]] == [3, 8]  # bounded


def test_sets_without_a_token_axis_are_timed_as_they_are():
    vset = ValidationSet("npz", "x.npz", {"x": np.ones((5, 3), np.float32)})
    batches, padding = real_batches(vset, 2, 8)
    assert padding == "fixed" and [b["x"].shape for b in batches] == [(2, 3), (2, 3), (1, 3)]
    result = measure_real_length(PerToken(2.0), PerToken(1.0), vset, 2, 5, monitor=QuietMonitor())
    assert result.mean_length is None and result.samples == 5 and result.padding == "fixed"


def test_hostile_bounds_are_refused():
    with pytest.raises(ValueError, match="max_batches"):
        real_batches(token_set(), 2, 0)
    with pytest.raises(ValueError, match="rounds"):
        measure_real_length(PerToken(1), PerToken(1), token_set(), 2, 0)
    with pytest.raises(ValueError, match="max_batch"):
        scan_ladder(0)
    with pytest.raises(ValueError, match="calls"):
        scan_batch_sizes(PerToken(1), token_set(), 4, 8, calls=0)


def test_real_length_throughput_alternates_rounds_over_the_real_batches():
    vset = token_set()
    source, artifact = PerToken(3.0), PerToken(1.0)
    result = measure_real_length(source, artifact, vset, 2, rounds=5, max_batches=3, monitor=QuietMonitor())
    # 3 batches of (2, 3), (2, 8), (2, 2): 26 padded tokens, 6 samples per pass
    assert result.batches == 3 and result.samples == 6 and result.mean_length == pytest.approx(13 / 3)
    assert [b["input_ids"].shape[1] for b in source.timed[:3]] == [3, 8, 2] and len(source.timed) == 15
    assert source.warm_calls == artifact.warm_calls == 3  # one untimed call per batch, first round only
    assert result.source_round_s == pytest.approx([0.078] * 5) and result.artifact_round_s == pytest.approx([0.026] * 5)
    assert result.artifact_throughput == pytest.approx(6 / 0.026) and result.source_throughput == pytest.approx(
        6 / 0.078
    )
    assert result.estimate is not None and result.estimate.ratio == pytest.approx(3.0)
    assert result.estimate.ci_low == pytest.approx(3.0) and result.estimate.rounds == 5


def test_real_length_ratio_interval_covers_a_noisy_source():
    class Noisy(PerToken):
        def __init__(self) -> None:
            super().__init__(2.0)
            self.factor = itertools.cycle([1.0, 1.5, 0.8, 1.2, 1.0, 1.1])

        def time_pass(self, batches, warm):
            return super().time_pass(batches, warm) * next(self.factor)

    result = measure_real_length(Noisy(), PerToken(1.0), token_set(), 2, rounds=6, monitor=QuietMonitor())
    assert result.estimate is not None
    assert result.estimate.ci_low < result.estimate.ratio < result.estimate.ci_high
    assert result.estimate.ci_low <= 2.0 * 1.1 and result.estimate.ci_high >= 2.0


def test_fewer_rounds_than_an_interval_needs_give_no_estimate():
    result = measure_real_length(PerToken(2), PerToken(1), token_set(), 2, rounds=2, monitor=QuietMonitor())
    assert result.estimate is None and len(result.source_round_s) == 2


@pytest.mark.parametrize(
    ("max_batch", "ladder"), [(1, [1]), (2, [1, 2]), (16, [1, 2, 4, 8, 16]), (24, [1, 2, 4, 8, 16, 24])]
)
def test_scan_ladder(max_batch, ladder):
    assert scan_ladder(max_batch) == ladder


class Curve(Runner):
    """A runner whose call at batch ``b`` takes ``latency_ms[b]`` milliseconds (scripted)."""

    def __init__(self, latency_ms: dict[int, float]) -> None:
        super().__init__(1)
        self.latency_ms = latency_ms
        self.batches: list[int] = []

    def _activate(self) -> None:
        pass

    def _infer(self, feeds: Feeds) -> Feeds:
        return {}

    def time_calls(self, feeds: Feeds, warmup: int, iterations: int) -> list[float]:
        batch = len(feeds["input_ids"])
        self.batches.append(batch)
        return [self.latency_ms[batch] / 1e3] * iterations


def test_scan_picks_the_batch_of_the_best_throughput():
    # throughput (samples/s): 100, 160, 200, 160, 128: best at 4
    runner = Curve({1: 10.0, 2: 12.5, 4: 20.0, 8: 50.0, 16: 125.0})
    scan = scan_batch_sizes(runner, token_set(), 16, 8, calls=4, budget_s=1e9)
    assert [p.batch_size for p in scan.points] == [1, 2, 4, 8, 16] == runner.batches
    assert [p.latency.throughput for p in scan.points] == pytest.approx([100, 160, 200, 160, 128])
    assert scan.best_batch_size == 4 and scan.best_throughput == pytest.approx(200) and not scan.stopped
    assert scan.sequence_length == 8 and all(p.latency.iterations == 4 for p in scan.points)


def test_scan_ties_go_to_the_smaller_batch():
    stats = [LatencyStats.from_seconds([b / 100], b) for b in (1, 2, 4)]  # 100 samples/s each
    assert best_batch([ScanPoint(b, s) for b, s in zip((1, 2, 4), stats, strict=True)]) == 1
    assert best_batch([]) == 0


def test_scan_stops_before_a_batch_size_that_would_overrun_its_budget():
    runner = Curve({1: 100.0, 2: 200.0, 4: 400.0, 8: 800.0})
    ticks = itertools.count(0.0, 0.5)  # the clock moves 0.5 s per read
    scan = scan_batch_sizes(runner, token_set(), 8, 8, calls=3, budget_s=3.0, clock=lambda: next(ticks))
    # batch 1 is always timed; batch 2 is guessed at 0.2 s x 4 calls = 0.8 s: 0.5 + 0.8 <= 3;
    # batch 4 at 1.6 s: 1.0 + 1.6 <= 3; batch 8 at 3.2 s would overrun
    assert runner.batches == [1, 2, 4] and "batch 8" in scan.stopped and scan.best_batch_size == 1


def test_p99_is_the_99th_percentile():
    seconds = [0.001 * (i + 1) for i in range(100)]  # 1 .. 100 ms
    stats = LatencyStats.from_seconds(seconds, 2)
    assert stats.p99_ms == pytest.approx(np.percentile(np.arange(1, 101), 99))
    assert stats.p50_ms < stats.p90_ms < stats.p99_ms <= 100
    with pytest.raises(ValueError, match="no call times"):
        LatencyStats.from_seconds([], 1)


def test_recipe_fields_of_the_real_workloads():
    bench = BenchmarkConfig()
    assert bench.real_length is True and bench.scan_max_batch is None and bench.real_length_batches == 4
    for bad in ({"scan_max_batch": 0}, {"real_length_batches": 0}, {"scan_budget_s": -1}):
        with pytest.raises(ValueError):
            BenchmarkConfig(**bad)
    with pytest.raises(RecipeError):
        load_recipe("ner-int8", {"benchmark.scan_max_batch": 5000})
    assert load_recipe("ner-int8").benchmark.scan_max_batch == 16
    assert load_recipe("cnn-int8").benchmark.scan_max_batch == 32


class Logged(Runner):
    """Logs the length of every batch it runs."""

    def __init__(self) -> None:
        super().__init__(1)
        self.calls: list[int] = []

    def _activate(self) -> None:
        pass

    def _infer(self, feeds: Feeds) -> Feeds:
        self.calls.append(feeds["input_ids"].shape[1])
        return {}


def test_a_pass_times_one_call_per_batch_after_an_optional_warm_call():
    runner = Logged()
    batches, _ = real_batches(token_set(), 2, 3)
    assert runner.time_pass(batches, warm=False) > 0 and runner.calls == [3, 8, 2]
    runner.calls.clear()
    runner.time_pass(batches, warm=True)
    assert runner.calls == [3, 3, 8, 8, 2, 2]
