"""Where the export and the source differ, the message names the outputs and the likely cause: a
source left in training mode with dropout (not deterministic), another attention implementation
in the reference, half-precision weights."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from optkit.errors import ExportError
from optkit.io_spec import ModelInfo
from optkit.runners.base import Feeds, Runner
from optkit.validation.export_check import check_export, likely_causes


def _identity(path):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


class _Noisy(Runner):
    """``y = x + noise``: a source that differs on every call."""

    def __init__(self) -> None:
        super().__init__(1)
        self.rng = np.random.default_rng(0)

    def _activate(self) -> None:
        pass

    def _infer(self, feeds: Feeds) -> Feeds:
        return {"y": feeds["x"] + self.rng.normal(size=feeds["x"].shape).astype(np.float32)}


class _Offset(Runner):
    """``y = x + 0.01``: deterministic, but not what the export computes."""

    def __init__(self) -> None:
        super().__init__(1)

    def _activate(self) -> None:
        pass

    def _infer(self, feeds: Feeds) -> Feeds:
        return {"y": feeds["x"] + np.float32(0.01)}


BATCH = {"x": np.ones((2, 4), np.float32)}


def test_a_nondeterministic_source_is_named_as_the_likely_cause(tmp_path):
    with pytest.raises(ExportError) as exc:
        check_export(_identity(tmp_path / "m.onnx"), _Noisy(), BATCH, 1e-3, 1e-3, 1)
    assert "'y' max |onnx - source|" in exc.value.message
    assert (
        "likely: the source model is not deterministic (two runs on the same batch differ by up to" in exc.value.message
    )
    assert "model.eval()" in exc.value.hint


def test_attention_and_half_precision_hints_come_from_the_traits(tmp_path):
    traits = {"attention": "PyTorch eager (hf, sdpa attention)", "float16": True}
    with pytest.raises(ExportError) as exc:
        check_export(_identity(tmp_path / "m.onnx"), _Offset(), BATCH, 1e-3, 1e-3, 1, lambda: traits)
    assert "'y' max |onnx - source| = 0.01" in exc.value.message
    assert "the reference runs PyTorch eager (hf, sdpa attention) while the export uses eager attention" in (
        exc.value.message
    )
    assert "float16/bfloat16 weights" in exc.value.message and "attn_implementation='eager'" in exc.value.hint


def test_without_a_likely_cause_the_exporter_hint_stays(tmp_path):
    with pytest.raises(ExportError) as exc:
        check_export(_identity(tmp_path / "m.onnx"), _Offset(), BATCH, 1e-3, 1e-3, 1, dict)
    assert "likely" not in exc.value.message and "mistraced" in exc.value.hint


def test_likely_causes_order_and_training_mode():
    assert likely_causes(0.0, {}) == []
    [(cause, fix)] = likely_causes(0.0, {"training": 3})
    assert cause == "3 module(s) of the source are in training mode" and "model.eval()" in fix
    causes = likely_causes(0.5, {"dropout": 2, "training": 1, "float16": True})
    assert causes[0][0].endswith("2 dropout layer(s)/op(s) active, 1 module(s) in training mode")
    assert "float16" in causes[1][0]


def test_a_model_traced_in_training_mode_with_dropout(tmp_path):
    """The issue's case: dropout baked into a TorchScript trace, exported, checked: the message
    says the source is not deterministic and has active dropout."""
    torch = pytest.importorskip("torch")
    from optkit.sources.torch_source import TorchSource

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)).train()
    traced = torch.jit.trace(model, torch.ones(2, 4), check_trace=False).eval()
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(
        model.eval(), (torch.ones(2, 4),), str(onnx_path), input_names=["x"], output_names=["y"], dynamo=False
    )
    source = TorchSource(tmp_path / "m.pt", ModelInfo(input_names=["x"], output_names=["y"]), "torchscript", traced)
    assert source.traits() == {"dropout": 1}
    with pytest.raises(ExportError) as exc:
        check_export(onnx_path, source.runner(1), BATCH, 1e-3, 1e-3, 1, source.traits)
    assert "the source model is not deterministic" in exc.value.message
    assert "1 dropout layer(s)/op(s) active" in exc.value.message
    assert "torch.jit.trace in training mode bakes dropout" in exc.value.hint


def test_an_eval_module_has_no_traits():
    torch = pytest.importorskip("torch")
    from optkit.sources.torch_source import TorchSource

    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)).eval())
    assert TorchSource(None, ModelInfo(), "torchscript", scripted).traits() == {}  # type: ignore[arg-type]
    live = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)).train()
    assert TorchSource(None, ModelInfo(), "pickle", live).traits() == {"training": 3, "dropout": 1}  # type: ignore[arg-type]


def test_conversion_of_a_model_traced_in_training_mode_names_dropout(tmp_path):
    """Through the confined worker (its ``traits`` request) and the CLI's exit code 2."""
    torch = pytest.importorskip("torch")
    import optkit
    from tests_support import FAST

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)).train()
    torch.jit.trace(model, torch.ones(2, 4), check_trace=False).save(str(tmp_path / "m.pt"))
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
    with pytest.raises(ExportError) as exc:
        optkit.convert(tmp_path / "m.pt", "fp32", tmp_path / "out", data=str(tmp_path / "x.npz"), overrides=FAST)
    assert exc.value.exit_code == 2
    # the same words every run: the graph is refused before any (random) comparison
    assert "1 Dropout node(s) in training mode" in exc.value.message
    assert "likely: the source model has active dropout: 1 dropout layer(s)/op(s) active" in exc.value.message
    assert "torch.jit.trace in training mode bakes dropout" in exc.value.hint
    assert not (tmp_path / "out").exists()


def test_an_export_with_training_mode_dropout_is_refused_before_any_comparison(tmp_path):
    """A trace in training mode leaves ONNX Dropout nodes with training_mode=true: ONNX Runtime
    drops at random too, so a comparison could match by luck (it did, on a CI machine)."""
    torch = pytest.importorskip("torch")
    from optkit.validation.export_check import training_dropouts

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)).train()
    traced = torch.jit.trace(model, torch.ones(2, 4), check_trace=False)
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(traced, (torch.ones(2, 4),), str(onnx_path), input_names=["x"], output_names=["y"], dynamo=False)
    assert training_dropouts(onnx_path) == 1

    class SameEveryTime:
        """A source that agrees with ONNX Runtime: the check must not even ask it."""

        def infer(self, feeds):
            raise AssertionError("compared outputs of a random graph")

    with pytest.raises(ExportError) as exc:
        check_export(onnx_path, SameEveryTime(), BATCH, 1e-3, 1e-3, 1, lambda: {"dropout": 1})  # type: ignore[arg-type]
    assert "1 Dropout node(s) in training mode" in exc.value.message
    assert "1 dropout layer(s)/op(s) active" in exc.value.message
    assert "model.eval()" in exc.value.hint


def test_an_eval_export_has_no_training_dropout(tmp_path):
    torch = pytest.importorskip("torch")
    from optkit.validation.export_check import training_dropouts

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)).eval()
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.ones(2, 4),), str(onnx_path), input_names=["x"], output_names=["y"], dynamo=False)
    assert training_dropouts(onnx_path) == 0


def test_a_random_source_that_matches_once_is_still_refused(tmp_path):
    """Outputs equal on the first run, then not: a source with active dropout is run twice more."""
    torch = pytest.importorskip("torch")
    from optkit.runners.ort_runner import OrtRunner

    model = torch.nn.Linear(4, 4).eval()
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.ones(2, 4),), str(onnx_path), input_names=["x"], output_names=["y"], dynamo=False)
    exact = OrtRunner(onnx_path, 1).infer(BATCH)

    class LuckyOnce:
        calls = 0

        def infer(self, feeds):
            LuckyOnce.calls += 1
            return exact if LuckyOnce.calls == 1 else {"y": exact["y"] * 2}

    with pytest.raises(ExportError) as exc:
        check_export(onnx_path, LuckyOnce(), BATCH, 1e-3, 1e-3, 1, lambda: {"dropout": 1})  # type: ignore[arg-type]
    assert "matched the source once, but the source model is not deterministic" in exc.value.message

    # a deterministic source with the same traits passes
    class Steady:
        def infer(self, feeds):
            return exact

    assert check_export(onnx_path, Steady(), BATCH, 1e-3, 1e-3, 1, lambda: {"dropout": 1}) <= 1e-6  # type: ignore[arg-type]


def test_a_training_mode_dropout_with_ratio_zero_is_the_identity_and_allowed(tmp_path):
    from optkit.validation.export_check import training_dropouts

    def dropout_model(ratio):
        nodes = [helper.make_node("Dropout", ["x", "ratio", "train"], ["y"], name="d")]
        inits = [
            onnx.numpy_helper.from_array(np.array(ratio, np.float32), "ratio"),
            onnx.numpy_helper.from_array(np.array(True), "train"),
        ]
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
            inits,
        )
        path = tmp_path / f"d{ratio}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        return path

    assert training_dropouts(dropout_model(0.0)) == 0
    assert training_dropouts(dropout_model(0.1)) == 1
