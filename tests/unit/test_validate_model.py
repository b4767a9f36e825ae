"""The one validation path (validate_model, finite_reference) and the post-export check
(check_export), on a tiny ONNX graph and a stand-in source runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from optkit.errors import ExportError, PassError, SourceModelError
from optkit.io_spec import ModelInfo
from optkit.recipe import AccuracyGate
from optkit.runners.base import Feeds, Runner
from optkit.runners.ort_runner import OrtRunner
from optkit.validation.data import ValidationSet
from optkit.validation.export_check import check_export
from optkit.validation.validate_model import finite_reference, validate_model

INFO = ModelInfo(task="feature-extraction")
GATES = [AccuracyGate(metric="cosine_min", min=0.999), AccuracyGate(metric="max_abs_error", max=1e-4)]


def _doubler(path: Path, output: str = "y") -> Path:
    """``y = x * 2`` on float32 (N, 4)."""
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], [output])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["n", 4])],
        [two],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


class _Counting(Runner):
    """Wraps a runner and counts its calls (one per validation batch)."""

    def __init__(self, inner: Runner) -> None:
        super().__init__(1)
        self.inner, self.calls = inner, 0

    def _activate(self) -> None:
        self.inner.activate()

    def _infer(self, feeds: Feeds) -> Feeds:
        self.calls += 1
        return self.inner.infer(feeds)


class _Source(Runner):
    """A stand-in source runner: ``y = x * factor``."""

    def __init__(self, factor: float, output: str = "y") -> None:
        super().__init__(1)
        self.factor, self.output = factor, output

    def _activate(self) -> None:
        pass

    def _infer(self, feeds: Feeds) -> Feeds:
        return {self.output: feeds["x"] * self.factor}


@pytest.fixture
def vset() -> ValidationSet:
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    return ValidationSet("npz", "t.npz", {"x": x})


def test_every_batch_is_run_and_every_gate_evaluated(tmp_path, vset):
    runner = _Counting(OrtRunner(_doubler(tmp_path / "m.onnx"), 1))
    checked = validate_model(runner, {"y": vset.feeds["x"] * 2}, vset, INFO, GATES, batch_size=3)
    assert runner.calls == 4  # 10 samples in batches of 3
    assert checked.accuracy.samples == 10 and checked.accuracy.metrics["max_abs_error"] == 0.0
    assert [(g.metric, g.status) for g in checked.gates] == [("cosine_min", "passed"), ("max_abs_error", "passed")]


def test_a_model_that_differs_fails_the_gates_it_misses(tmp_path, vset):
    runner = OrtRunner(_doubler(tmp_path / "m.onnx"), 1)
    reference = {"y": vset.feeds["x"] * 2 + 0.01}  # same direction, shifted: cosine holds, error does not
    checked = validate_model(runner, reference, vset, INFO, GATES, batch_size=4)
    assert [g.status for g in checked.gates] == ["passed", "failed"]
    assert checked.gates[1].value == pytest.approx(0.01, rel=1e-3)


def test_outputs_that_cannot_be_paired_are_a_pass_error(tmp_path, vset):
    runner = OrtRunner(_doubler(tmp_path / "m.onnx", output="other"), 1)
    with pytest.raises(PassError, match="no output name is shared"):
        validate_model(runner, {"y": vset.feeds["x"]}, vset, INFO, GATES, batch_size=4)


def test_a_reference_with_nan_is_refused():
    good = {"y": np.ones((2, 3), np.float32), "label": np.array([1, 2])}
    assert finite_reference(good) is good
    bad = {"y": np.array([[1.0, np.nan], [np.inf, 0.0]], np.float32)}
    with pytest.raises(SourceModelError, match="'y' holds 2 NaN/Inf value"):
        finite_reference(bad)


def test_export_check_returns_the_largest_difference(tmp_path, vset):
    batch = vset.batches(4)[0]
    worst = check_export(_doubler(tmp_path / "m.onnx"), _Source(2.0), batch, 1e-3, 1e-3, threads=1)
    assert worst == 0.0


def test_export_check_names_every_output_that_differs(tmp_path, vset):
    with pytest.raises(ExportError, match=r"computes different outputs: 'y' max \|onnx - source\|") as err:
        check_export(_doubler(tmp_path / "m.onnx"), _Source(3.0), vset.batches(4)[0], 1e-3, 1e-3, threads=1)
    assert "mistraced" in err.value.hint


def test_export_that_does_not_run_is_an_export_error(tmp_path, vset):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ExportError, match="the exported model does not run in ONNX Runtime") as err:
        check_export(broken, _Source(2.0), vset.batches(4)[0], 1e-3, 1e-3, threads=1)
    assert err.value.hint == "try another --opset"
