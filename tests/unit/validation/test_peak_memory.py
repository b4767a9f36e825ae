"""Each runner's own peak memory (:mod:`optkit.validation.peak_memory`): the artifact in a child
process of its own, the source's worker read by pid, failures recorded rather than raised."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from optkit.records.manifest import PeakMemoryRecord
from optkit.runners.base import Runner
from optkit.validation.peak_memory import (
    PeakMemory,
    artifact_peak,
    parse_child_answer,
    read_peak_mb,
    reset_peak,
    worker_peak,
)
from optkit.validation.speed import own_process, start_peak_memory

linux = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM needs Linux /proc")


def double(path: Path) -> Path:
    """``y = x + x`` on float32 (N, 3)."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@linux
def test_artifact_peak_is_read_in_a_child_process_of_its_own(tmp_path):
    feeds = {"x": np.ones((4, 3), np.float32)}
    record = artifact_peak(double(tmp_path / "m.onnx"), 1, "cpu", feeds, tmp_path)
    assert record.error == "" and record.peak_mb is not None and record.baseline_mb is not None
    assert record.peak_mb >= record.baseline_mb > 0  # the interpreter + onnxruntime, then the session
    assert "VmHWM" in record.method and "child process" in record.scope
    assert not (tmp_path / "peak-memory-inputs.npz").exists()  # the inputs file is removed
    PeakMemoryRecord.model_validate(record.__dict__)


def test_a_failing_child_is_recorded_not_raised(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    record = artifact_peak(tmp_path / "bad.onnx", 1, "cpu", {"x": np.ones((1, 3), np.float32)}, tmp_path)
    assert record.peak_mb is None and "exited with" in record.error


@pytest.mark.parametrize(
    ("code", "stdout", "reason"),
    [
        (0, "", "malformed"),
        (0, "{not json", "malformed"),
        (0, '{"peak_mb": -1, "baseline_mb": 5, "method": "m"}', "out of range"),
        (0, '{"peak_mb": "big", "baseline_mb": 5, "method": "m"}', "out of range"),
        (0, '{"baseline_mb": 5, "method": "m"}', "malformed"),
        (1, "", "exited with 1: boom"),
    ],
)
def test_malformed_child_answers(code, stdout, reason):
    record = parse_child_answer(code, stdout, "trace\nboom\n", "scope")
    assert record.peak_mb is None and reason in record.error


def test_a_good_child_answer():
    record = parse_child_answer(0, 'noise\n{"peak_mb": 80.5, "baseline_mb": 60, "method": "VmHWM"}\n', "", "s")
    assert record == PeakMemory(80.5, 60.0, "s", "VmHWM")


@linux
def test_a_worker_peak_is_its_own_and_resets():
    """A child that touches ~100 MB then frees it: its VmHWM keeps the peak until reset."""
    code = "import sys, time; x = bytearray(100_000_000); del x; print('ok', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ok"
        before = worker_peak(child.pid, reset_done=False)
        assert before.peak_mb is not None and before.peak_mb > 100 and "reset was refused" in before.scope
        assert reset_peak(child.pid)
        after = worker_peak(child.pid, reset_done=True)
        assert after.peak_mb is not None and 0 < after.peak_mb < before.peak_mb - 50
        assert "reset before it" in after.scope
    finally:
        child.kill()
        child.wait()


def test_unreadable_processes_give_none():
    assert read_peak_mb(2**22 + 12345) is None  # beyond pid_max: no such process
    assert not reset_peak(2**22 + 12345)
    missing = worker_peak(2**22 + 12345, reset_done=False)
    assert missing.peak_mb is None and "unreadable" in missing.error
    assert worker_peak(None, reset_done=False).error == "the source runner has no process of its own"


class InProcess(Runner):
    def _activate(self) -> None:
        pass

    def _infer(self, feeds):
        return {}


def test_a_runner_in_this_process_has_no_process_of_its_own():
    runner = InProcess(1)
    assert own_process(runner) is None and start_peak_memory(runner) is False


@linux
def test_string_inputs_reach_the_child_without_pickle(tmp_path):
    """A string input held as an object array is sent as text (the child refuses pickles)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["y"])],
        "strings",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["n", 1])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, ["n", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "s.onnx")
    feeds = {"s": np.array([["a"], ["bc"]], dtype=object)}
    record = artifact_peak(tmp_path / "s.onnx", 1, "cpu", feeds, tmp_path)
    assert record.error == "" and record.peak_mb is not None
