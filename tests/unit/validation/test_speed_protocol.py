"""The timing protocol (alternating rounds, re-measuring while inconclusive) with scripted runners,
and speed gates read from the interval. No timed test: every call time is scripted."""

import itertools

import numpy as np
import pytest

from optkit.artifact.junit import junit_xml
from optkit.recipe import BenchmarkConfig, SpeedGate
from optkit.runners.base import Runner
from optkit.validation.gates import GateResult, evaluate_speed, status_blocks
from optkit.validation.noise import NoiseRecord
from optkit.validation.speed import SpeedReport, TimingPlan, gate_reads, measure_shape


class Scripted(Runner):
    """A runner whose ``time_calls`` returns scripted block times and logs each request."""

    def __init__(self, name, blocks, log):
        super().__init__(threads=1)
        self.label, self.blocks, self.log = name, blocks, log

    def _activate(self):
        pass

    def _infer(self, feeds):
        return {}

    def time_calls(self, feeds, warmup, iterations):
        self.log.append((self.label, warmup, iterations))
        per_call = next(self.blocks)
        return [per_call * (1 + 0.001 * i) for i in range(iterations)]


class QuietMonitor:
    def start(self):
        pass

    def round_started(self):
        pass

    def round_done(self):
        return False

    def stop(self, src, art):
        return NoiseRecord(cv_source=0.0, cv_artifact=0.0)


class ContendedMonitor(QuietMonitor):
    """Reports the rounds whose index is in ``busy`` as contended (others used 1.8 of 0 spare cores)."""

    def __init__(self, busy):
        self.busy, self.index = set(busy), -1
        self.record = NoiseRecord(spare_cores=0.0)

    def round_done(self):
        self.index += 1
        self.record.round_others_cores.append(1.8 if self.index in self.busy else 0.0)
        if self.index in self.busy:
            self.record.contended_rounds.append(self.index)
        return self.index in self.busy

    def stop(self, src, art):
        return self.record


def run(source_blocks, artifact_blocks, plan, thresholds=(), clock=None, monitor=None):
    log = []
    src = Scripted("source", iter(source_blocks), log)
    art = Scripted("artifact", iter(artifact_blocks), log)
    ticks = itertools.count() if clock is None else clock
    result = measure_shape(src, art, {}, 1, 16, plan, thresholds, lambda: float(next(ticks)), monitor or QuietMonitor())
    return result, log


def biased_source(busy):
    """Source 2x the artifact in quiet rounds, 10x in the rounds in ``busy`` (a neighbour on its cores)."""
    return iter([0.100 if i in busy else 0.020 for i in range(100)])


def test_contended_rounds_are_left_out_of_the_interval():
    busy = {0, 2, 4}
    plan = TimingPlan(1, 3, rounds=5, max_rounds=15, budget_s=1e9)
    result, _ = run(biased_source(busy), itertools.repeat(0.010), plan, [1.2], monitor=ContendedMonitor(busy))
    assert not result.contended and result.estimate is not None
    assert result.estimate.rounds == result.rounds - len(busy)  # re-measured until 3 quiet rounds
    assert result.estimate.ci_low == pytest.approx(2.0, rel=0.01) and result.estimate.ci_high < 2.1
    assert result.verdicts[0].verdict == "passed"
    gate = evaluate_speed([SpeedGate(device="cpu", batch_size=1, min=1.2)], SpeedReport(1, 1, 3, [result]))[0]
    assert gate.status == "passed"


def test_a_shape_timed_only_under_contention_decides_no_gate():
    """Every round contended: the (biased, tight) interval over all rounds is reported, the gate is
    inconclusive whatever it says (the noisy-neighbour case: 9x reported for a 2x model)."""
    busy = set(range(100))
    plan = TimingPlan(1, 3, rounds=5, max_rounds=7, budget_s=1e9)
    result, _ = run(biased_source(busy), itertools.repeat(0.010), plan, [1.2], monitor=ContendedMonitor(busy))
    assert result.contended and result.rounds == 7  # re-measured up to max_rounds, never quiet
    assert result.estimate is not None and result.estimate.ci_low > 9  # clears 1.2x, yet is no evidence
    assert [v.verdict for v in result.verdicts] == ["inconclusive"]
    gate = evaluate_speed([SpeedGate(device="cpu", batch_size=1, min=1.2)], SpeedReport(1, 1, 3, [result]))[0]
    assert gate.status == "inconclusive" and status_blocks(gate.status, strict=False)
    assert "7 of 7 rounds" in gate.reason and "spare core" in gate.reason and "quiet machine" in gate.reason


def test_rounds_alternate_blocks_and_warm_up_fully_only_first():
    result, log = run(itertools.repeat(0.020), itertools.repeat(0.010), TimingPlan(4, 7, rounds=5, max_rounds=5))
    assert [who for who, _, _ in log] == ["source", "artifact"] * 5
    assert [w for _, w, _ in log] == [4, 4] + [1] * 8 and {n for _, _, n in log} == {7}
    assert result.rounds == 5 and len(result.artifact_round_ms) == 5
    assert result.source_round_ms[0] == pytest.approx(20.0 * 1.003)
    assert result.speedup == pytest.approx(2.0) and result.source.iterations == 35
    assert result.estimate is not None and result.estimate.ci_low == pytest.approx(2.0)


def test_a_clear_verdict_takes_no_extra_round():
    plan = TimingPlan(1, 3, rounds=5, max_rounds=15, budget_s=1e9)
    result, _ = run(itertools.repeat(0.020), itertools.repeat(0.010), plan, thresholds=[1.2])
    assert result.rounds == 5 and [(v.threshold, v.verdict) for v in result.verdicts] == [(1.2, "passed")]


def noisy_source():
    """Source 4x slower every other round: the interval straddles 1.2 for as long as it lasts."""
    return itertools.cycle([0.040, 0.010])


def test_inconclusive_is_re_measured_up_to_max_rounds():
    plan = TimingPlan(1, 3, rounds=5, max_rounds=9, budget_s=1e9)
    result, _ = run(noisy_source(), itertools.repeat(0.010), plan, thresholds=[1.2])
    assert result.rounds == 9 and result.verdicts[0].verdict == "inconclusive"


def test_inconclusive_is_re_measured_within_the_budget():
    # the clock advances 1 s per read; the budget (2.5 s) starts after the 5 mandatory rounds
    plan = TimingPlan(1, 3, rounds=5, max_rounds=100, budget_s=2.5)
    result, _ = run(noisy_source(), itertools.repeat(0.010), plan, thresholds=[1.2])
    assert 5 < result.rounds < 10


def test_a_zero_budget_never_re_measures():
    plan = TimingPlan(1, 3, rounds=5, max_rounds=100, budget_s=0.0)
    result, _ = run(noisy_source(), itertools.repeat(0.010), plan, thresholds=[1.2])
    assert result.rounds == 5


def test_re_measuring_can_settle_a_verdict():
    """A burst in the first rounds, then a quiet machine: extra rounds narrow the interval to a pass."""
    source = itertools.chain([0.040, 0.010, 0.040], itertools.repeat(0.020))
    plan = TimingPlan(1, 3, rounds=5, max_rounds=40, budget_s=1e9)
    result, _ = run(source, itertools.repeat(0.010), plan, thresholds=[1.2])
    assert 5 < result.rounds < 40 and result.verdicts[0].verdict == "passed"


def test_gate_reads_the_first_sequence_length_when_it_names_none():
    gate = SpeedGate(batch_size=1, min=1.2)
    assert gate_reads(gate, "cpu", 1, 128, first_seq=128)
    assert not gate_reads(gate, "cpu", 1, 256, first_seq=128)
    assert not gate_reads(gate, "cpu", 8, 128, first_seq=128)
    assert not gate_reads(gate, "cuda", 1, 128, first_seq=128)
    assert gate_reads(SpeedGate(batch_size=1, min=1.2, sequence_length=256), "cpu", 1, 256, first_seq=128)
    assert gate_reads(gate, "cpu", 1, None, first_seq=None)  # inputs without a token axis


def test_recipe_round_limits():
    assert BenchmarkConfig().rounds == 5 and BenchmarkConfig().max_rounds >= 5
    with pytest.raises(ValueError, match="max_rounds"):
        BenchmarkConfig(rounds=8, max_rounds=6)
    with pytest.raises(ValueError):
        BenchmarkConfig(rounds=4)
    with pytest.raises(ValueError):
        BenchmarkConfig(budget_s=-1)


def report_with(source_blocks, artifact_blocks, noise=None):
    result, _ = run(iter(source_blocks), iter(artifact_blocks), TimingPlan(1, 5, rounds=len(source_blocks)))
    result.noise = noise
    report = SpeedReport(1, 1, 5)
    report.shapes.append(result)
    return report


@pytest.mark.parametrize(
    ("source", "expected"),
    [([0.020] * 5, "passed"), ([0.011] * 5, "failed"), ([0.040, 0.010, 0.040, 0.010, 0.010], "inconclusive")],
)
def test_speed_gate_statuses_come_from_the_interval(source, expected):
    busy = NoiseRecord(load_after=3.1, others_cores=1.6, warnings=["other processes used 1.60 cores"])
    [gate] = evaluate_speed([SpeedGate(batch_size=1, min=1.2)], report_with(source, [0.010] * 5, busy))
    assert gate.status == expected and gate.ci_low is not None and gate.ci_high is not None
    assert gate.ci_low <= gate.value <= gate.ci_high
    assert f"[{gate.ci_low:.2f}, {gate.ci_high:.2f}]" in gate.reason and "over 5 rounds" in gate.reason
    assert "the machine was busy (load 3.1, others 1.60 cores" in gate.reason
    if expected == "inconclusive":
        assert gate.reason.startswith("speed inconclusive:") and "straddles the 1.2× threshold" in gate.reason


def test_a_quiet_clear_gate_does_not_mention_the_machine():
    quiet = NoiseRecord(load_after=0.2, others_cores=0.0)
    [gate] = evaluate_speed([SpeedGate(batch_size=1, min=1.2)], report_with([0.020] * 5, [0.010] * 5, quiet))
    assert gate.status == "passed" and "machine" not in gate.reason


def inconclusive_gate():
    return GateResult(
        "speedup b1 cpu >= 1.2", "speed", "speedup", ">=", 1.2, 1.3, "inconclusive", "straddles", 1.0, 3.9
    )


@pytest.mark.parametrize("strict", [False, True])
def test_inconclusive_blocks_approval_in_both_modes(strict):
    gate = inconclusive_gate()
    assert gate.blocks(strict) and status_blocks("inconclusive", strict)
    assert not status_blocks("passed", strict) and status_blocks("skipped", strict) is strict


@pytest.mark.parametrize("strict", [False, True])
def test_junit_reports_inconclusive_as_a_failure(strict):
    xml = junit_xml("ner-int8", [inconclusive_gate()], strict).decode()
    assert 'failures="1"' in xml and 'type="inconclusive"' in xml and "straddles" in xml


def test_converted_result_counts_inconclusive_as_not_passed():
    from optkit.results import ConvertResult

    accuracy = GateResult("tag_agreement >= 0.99", "accuracy", "tag_agreement", ">=", 0.99, 1.0, "passed")
    result = ConvertResult(
        False,
        False,
        None,
        {},
        {},
        [],
        None,
        None,
        [accuracy, inconclusive_gate()],
        [],  # type: ignore[arg-type]
    )
    assert result.failed_gates == [inconclusive_gate()]
    assert result.rejections == ["speedup b1 cpu >= 1.2"]


def test_round_medians_are_recorded_in_ms():
    report = report_with([0.020, 0.030, 0.020, 0.020, 0.020], [0.010] * 5)
    shape = report.shapes[0]
    assert shape.source_round_ms[1] == pytest.approx(np.median([30.0 * (1 + 0.001 * i) for i in range(5)]))
