"""PyTorch models as users bring them, each converted end to end with the CLI: a dynamic and a
sequence-fixed ``.pt2``, dict-output and CNN TorchScript models, a state dict with its model code
(``--model-code``), and a Hugging Face model id resolved from a hub cache built here (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from typer.testing import CliRunner

from optkit.cli.app import app
from optkit.errors import SourceModelError
from optkit.runners.torch_runner import named_outputs
from optkit.sandbox.read_paths import model_read_paths
from optkit.sources.hf_hub import looks_like_repo_id
from optkit.sources.torch_model_code import resolve_model_code
from torch_user_models import build_hf_cache, build_user_models

runner = CliRunner()
QUICK = ["--batch-sizes", "1,4", "--set", "benchmark.iterations=3", "--set", "benchmark.warmup=1"]


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> dict[str, Path]:
    return build_user_models(tmp_path_factory.mktemp("user-models"))


def convert(source, out: Path, *args: str):
    result = runner.invoke(app, ["convert", str(source), "-o", str(out), *QUICK, *args])
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None
    return result, manifest


def lengths(manifest) -> set:
    return {shape["sequence_length"] for shape in manifest["speed"]["shapes"]}


def test_dynamic_pt2_validates_at_the_datas_length_and_clamps_the_benchmark(user, tmp_path):
    result, manifest = convert(user["conv_dynamic"], tmp_path / "o", "-d", str(user["ids_20"]), "--opset", "17")
    assert result.exit_code == 0, result.output
    assert lengths(manifest) == {48}  # 128 asked for, the program was exported for 2..48
    assert manifest["artifact"]["opset"]["ai.onnx"] == 17  # the requested opset, not the exporter's 18


def test_pt2_data_outside_the_exported_range_names_the_dimension(user, tmp_path):
    result, _ = convert(user["conv_dynamic"], tmp_path / "o", "-d", str(user["ids_60"]))
    assert result.exit_code == 2, result.output
    assert "input 'input_ids' axis 1 (sequence) is 60, outside the range 2..48" in result.output


def test_lstm_pt2_with_auto_dims_runs_at_its_own_fixed_length(user, tmp_path):
    result, manifest = convert(user["lstm_auto"], tmp_path / "o", "-d", str(user["ids_32"]))
    assert result.exit_code == 0, result.output
    assert lengths(manifest) == {32}  # not padded to 128 (torch would fail its guard)


def test_lstm_pt2_refuses_data_of_another_length_with_the_axis(user, tmp_path):
    result, _ = convert(user["lstm_auto"], tmp_path / "o", "-d", str(user["ids_20"]))
    assert result.exit_code == 2, result.output
    assert "expects shape (batch, 32) int64 (axis 1 differs)" in result.output
    assert "Guard failed" not in result.output


def test_fully_static_pt2_names_its_fixed_batch(user, tmp_path):
    result, _ = convert(user["lstm_static"], tmp_path / "o", "-d", str(user["ids_32"]))
    assert result.exit_code == 2, result.output
    assert "axis 0 is 6, but the torch.export program fixed it at 2" in result.output


def test_dict_output_torchscript_exports_with_its_keys(user, tmp_path):
    result, _ = convert(user["dict_ts"], tmp_path / "o", "-d", str(user["features"]))
    assert result.exit_code == 0, result.output
    model = onnx.load(str(tmp_path / "o" / "model.onnx"))
    assert [o.name for o in model.graph.output] == ["logits", "embedding"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 8]  # the feature axis is no 'sequence'


def test_cnn_torchscript_keeps_channels_fixed_and_names_every_output(user, tmp_path):
    result, _ = convert(user["cnn_ts"], tmp_path / "o", "-d", str(user["pixels"]))
    assert result.exit_code == 0, result.output
    model = onnx.load(str(tmp_path / "o" / "model.onnx"))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 16, 16]
    assert [o.name for o in model.graph.output] == ["output", "output_1"]


def test_state_dict_with_model_code_converts_and_records_the_code(user, tmp_path):
    code = f"{user['factory']}:build"
    result, manifest = convert(user["state_dict"], tmp_path / "o", "-d", str(user["ids_20"]), "--model-code", code)
    assert result.exit_code == 0, result.output
    load = next(s for s in manifest["steps"] if s["name"].startswith("load source"))
    assert load["details"]["model_code"]["sha256"] == resolve_model_code(code).sha256
    assert manifest["source"]["kind"] == "state_dict"


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("wrong", "does not fit the --model-code module: missing ['extra.bias', 'extra.weight']"),
        ("not_a_module", "returned a int, not a torch.nn.Module"),
        ("absent", "has no function 'absent'"),
    ],
)
def test_model_code_that_does_not_fit_is_exit_2(user, tmp_path, factory, message):
    code = f"{user['factory']}:{factory}"
    result, _ = convert(user["state_dict"], tmp_path / "o", "-d", str(user["ids_20"]), "--model-code", code)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_hub_model_id_is_resolved_from_the_cache_offline(tiny, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    build_hf_cache(cache, tiny["hf"])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result, manifest = convert(
        "tiny-org/tiny-bert", tmp_path / "o", "-d", str(tiny["conll"]), "--sequence-lengths", "32"
    )
    assert result.exit_code == 0, result.output
    assert manifest["source"]["kind"] == "hf" and "models--tiny-org--tiny-bert" in manifest["source"]["path"]
    missing, _ = convert("tiny-org/absent", tmp_path / "o2")
    assert missing.exit_code == 2
    assert "model id tiny-org/absent is not in the Hugging Face cache" in missing.output
    assert "hf download tiny-org/absent" in missing.output


def test_repo_id_shapes():
    assert looks_like_repo_id("org/name") and looks_like_repo_id("bert-base/uncased.v2")
    assert not looks_like_repo_id("model.pt") and not looks_like_repo_id("a/b/c")
    assert not looks_like_repo_id("./org/name") and not looks_like_repo_id("org/na--me")


def test_snapshot_grants_its_blobs_only(tiny, tmp_path):
    snapshot = build_hf_cache(tmp_path / "hub", tiny["hf"])
    assert model_read_paths(snapshot) == [snapshot.resolve(), snapshot.parent.parent.resolve() / "blobs"]


def test_named_outputs():
    t = torch.zeros(1)
    assert [n for n, _ in named_outputs((t, t), ["output"])] == ["output", "output_1"]
    assert [n for n, _ in named_outputs({"a": t, "b": (t, t)}, [])] == ["a", "b_0", "b_1"]
    assert [n for n, _ in named_outputs(t, ["logits"])] == ["logits"]


def test_model_code_in_a_package_grants_the_package(tmp_path):
    package = tmp_path / "proj" / "nets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tagger.py").write_text("def build():\n    return None\n")
    code = resolve_model_code("nets.tagger:build", cwd=tmp_path / "proj")
    assert code.module == "nets.tagger" and code.read_paths == [package.resolve()]
    with pytest.raises(SourceModelError, match="module:factory"):
        resolve_model_code("nets.tagger", cwd=tmp_path / "proj")
    with pytest.raises(SourceModelError, match="no Python file"):
        resolve_model_code("nets.absent:build", cwd=tmp_path / "proj")
