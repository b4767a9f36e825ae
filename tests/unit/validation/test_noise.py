"""Noise detection with monkeypatched psutil readings (no real load is measured)."""

from collections import namedtuple

import psutil
import pytest

from optkit.validation import noise
from optkit.validation.noise import CV_WARN, OTHERS_CORES_WARN, NoiseMonitor, NoiseRecord, busy_warnings

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal")
ProcTimes = namedtuple("ProcTimes", "user system")
Freq = namedtuple("Freq", "current min max")
FREQ = Freq(2400.0, 800.0, 3000.0)


class FakeProcess:
    """A process of our tree with scripted CPU seconds (one value per read)."""

    def __init__(self, pid, seconds, children=()):
        self.pid, self.seconds, self._children = pid, list(seconds), list(children)

    def cpu_times(self):
        if not self.seconds:
            raise psutil.NoSuchProcess(self.pid)
        return ProcTimes(self.seconds.pop(0), 0.0)

    def children(self, recursive=False):
        return self._children


class Machine:
    """Scripted readings: system busy seconds per read, our tree's seconds, load, frequency."""

    def __init__(self, monkeypatch, system, me, worker, load=(0.5, 3.1), freq=FREQ):
        self.system = list(system)
        self.loads = list(load)
        tree = FakeProcess(1, me, [FakeProcess(2, worker)])
        monkeypatch.setattr(psutil, "cpu_times", lambda: CpuTimes(self.system.pop(0), 0, 0, 100, 0, 0, 0, 0))
        monkeypatch.setattr(psutil, "Process", lambda: tree)
        monkeypatch.setattr(psutil, "cpu_freq", lambda: freq)
        monkeypatch.setattr(noise.os, "getloadavg", lambda: (self.loads.pop(0), 0.0, 0.0))


def monitor(times=(0.0, 10.0)):
    clock = iter(times)
    return NoiseMonitor(lambda: next(clock))


def test_other_processes_cpu_is_system_busy_minus_our_tree(monkeypatch):
    # 10 s window: the system was busy 30 CPU-s, optkit 8 s and its worker 6 s: others 16 s = 1.6 cores
    Machine(monkeypatch, system=[100.0, 130.0], me=[1.0, 9.0], worker=[2.0, 8.0])
    mon = monitor()
    mon.start()
    rec = mon.stop([10.0] * 5, [5.0] * 5)
    assert rec.others_cores == pytest.approx(1.6) and rec.window_s == 10.0
    assert (rec.load_before, rec.load_after) == (0.5, 3.1)
    assert (rec.cpu_freq_mhz, rec.cpu_freq_max_mhz) == (2400.0, 3000.0)
    assert rec.busy and "1.60 cores" in rec.warnings[0] and "load average 3.1" in rec.warnings[0]
    assert "busy" in rec.summary() and "load 3.1" in rec.summary()


def test_a_quiet_machine_gives_no_warning(monkeypatch):
    # others: 14.1 - 14 = 0.1 CPU-s over 10 s = 0.01 cores
    Machine(monkeypatch, system=[100.0, 114.1], me=[1.0, 9.0], worker=[2.0, 8.0])
    mon = monitor()
    mon.start()
    rec = mon.stop([10.0, 10.1, 9.9, 10.0, 10.0], [5.0] * 5)
    assert rec.others_cores == pytest.approx(0.01) and not rec.busy and rec.warnings == []
    assert "quiet" in rec.summary()


def test_a_large_round_to_round_spread_warns(monkeypatch):
    Machine(monkeypatch, system=[100.0, 114.0], me=[1.0, 9.0], worker=[2.0, 8.0])
    mon = monitor()
    mon.start()
    rec = mon.stop([10.0] * 5, [5.0, 5.0, 9.0, 5.0, 5.0])
    assert rec.cv_artifact > CV_WARN and rec.cv_source == 0.0
    assert rec.warnings == [f"the artifact's per-round p50 varied by {rec.cv_artifact:.0%} (CV > 10%)"]


def test_a_worker_that_exits_during_the_window_is_not_an_error(monkeypatch):
    Machine(monkeypatch, system=[100.0, 114.0], me=[1.0, 9.0], worker=[2.0])  # gone at stop
    mon = monitor()
    mon.start()
    rec = mon.stop([10.0] * 5, [5.0] * 5)
    assert rec.others_cores == pytest.approx(0.6)  # its 6 s are then counted as others' (an overestimate)


def test_unreadable_readings_are_recorded_as_none(monkeypatch):
    def refuse(*_):
        raise OSError("not here")

    monkeypatch.setattr(psutil, "cpu_times", refuse)
    monkeypatch.setattr(psutil, "cpu_freq", lambda: None)
    monkeypatch.setattr(noise.os, "getloadavg", refuse)
    mon = monitor()
    mon.start()
    rec = mon.stop([10.0] * 5, [5.0] * 5)
    assert (rec.others_cores, rec.load_before, rec.load_after, rec.cpu_freq_mhz) == (None, None, None, None)
    assert rec.warnings == []


def test_cpu_freq_that_raises_is_none(monkeypatch):
    def missing():
        raise NotImplementedError

    monkeypatch.setattr(psutil, "cpu_freq", missing)
    assert noise._frequency() == (None, None)


def test_thresholds_are_exclusive():
    at = NoiseRecord(others_cores=OTHERS_CORES_WARN, cv_source=CV_WARN, cv_artifact=CV_WARN)
    assert busy_warnings(at) == []
    above = NoiseRecord(others_cores=OTHERS_CORES_WARN + 0.01)
    assert len(busy_warnings(above)) == 1


def test_contention_is_others_beyond_the_spare_cores(monkeypatch):
    from optkit.validation import noise

    monkeypatch.setattr(noise.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert noise.usable_cores() == 2 and noise.spare_cores(2) == 0.0 and noise.spare_cores(1) == 1.0
    assert noise.is_contended(0.3, 0.0) and not noise.is_contended(0.2, 0.0)
    assert not noise.is_contended(1.2, 1.0) and noise.is_contended(1.3, 1.0)
    assert not noise.is_contended(None, 0.0)  # unreadable is no evidence


def test_round_readings_mark_contended_rounds(monkeypatch):
    """Two scripted rounds: others used 0.1 then 1.5 cores (system busy seconds minus this tree's)."""
    from optkit.validation import noise

    monkeypatch.setattr(noise.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monitor = noise.NoiseMonitor(threads=2)
    snaps = iter([(0.0, 10.0, {1: 5.0}), (1.0, 12.1, {1: 7.0}), (1.0, 12.1, {1: 7.0}), (3.0, 17.1, {1: 9.0})])
    monkeypatch.setattr(monitor, "_snapshot", lambda: next(snaps))
    monitor.round_started()
    assert monitor.round_done() is False
    monitor.round_started()
    assert monitor.round_done() is True
    assert monitor.record.round_others_cores == pytest.approx([0.1, 1.5])
    assert monitor.record.contended_rounds == [1] and monitor.record.spare_cores == 0.0
    assert any("1 of 2 rounds" in w for w in noise.busy_warnings(monitor.record))
