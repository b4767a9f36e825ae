"""ONNX files as a source: detection, checks, external data, conversion through the pipeline."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

import optkit
from optkit.cli.app import app
from optkit.errors import SourceModelError
from optkit.hashing import sha256_file
from optkit.sources import onnx_source
from tests_support import FAST

runner = CliRunner()


@pytest.fixture(scope="module")
def bert_onnx(tiny, tmp_path_factory):
    """The tiny BERT exported to ONNX with its weights in ``bert.onnx.data``, plus token-id inputs."""
    from optkit.exporters.torch_exporter import export
    from optkit.recipe import ExportConfig
    from optkit.sources import torch_source

    folder = tmp_path_factory.mktemp("bert-onnx")
    source = torch_source.load(tiny["pt"], folder)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 41, size=(6, 12), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    export(source, feeds, ExportConfig(), folder / "inline.onnx")
    model = onnx.load(str(folder / "inline.onnx"))
    onnx.save_model(
        model,
        str(folder / "bert.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="bert.onnx.data",
        size_threshold=0,
    )
    np.savez(folder / "tokens.npz", **feeds)
    return folder


def test_skl2onnx_model_converts_as_onnx_source(tiny_sklearn, tmp_path):
    result = optkit.convert(
        tiny_sklearn["onnx"], "sklearn-fp32", tmp_path / "o", data=str(tiny_sklearn["npz"]), overrides=FAST
    )
    assert result.approved, [(g.name, g.value, g.status) for g in result.gates]
    assert result.source.framework == "onnx" and result.source.kind == "onnx"
    assert result.source.sha256 == sha256_file(tiny_sklearn["onnx"])
    assert result.accuracy.metrics["label_agreement"] == 1.0 and result.accuracy.metrics["max_abs_error"] == 0.0
    export = next(s for s in result.steps if s.name == "export")
    assert export.details["exporter"] == "copy (ONNX source)" and "ai.onnx.ml" in export.details["opset"]


def test_input_specs_come_from_the_graph(tiny_sklearn, bert_onnx, tmp_path):
    sk = onnx_source.load(tiny_sklearn["onnx"], tmp_path)
    assert sk.info.task == "classification" and sk.info.output_names == ["label", "probabilities"]
    assert sk.info.input_specs["X"].dtype == "float32" and sk.info.input_specs["X"].shape[1] == 13
    bert = onnx_source.load(bert_onnx / "bert.onnx", tmp_path)
    assert bert.info.input_specs["input_ids"].shape == ("batch", "sequence")
    assert bert.info.input_specs["input_ids"].dtype == "int64"
    assert bert.info.dynamic_axes["logits"] == {0: "batch", 1: "sequence"}


def test_external_data_source_converts_and_is_hashed_with_its_data(bert_onnx, tmp_path):
    folder = tmp_path / "src"
    shutil.copytree(bert_onnx, folder)
    source = onnx_source.load(folder / "bert.onnx", tmp_path)
    assert source.external_files == ["bert.onnx.data"]
    before = source.sha256()
    assert before not in (sha256_file(folder / "bert.onnx"), sha256_file(folder / "bert.onnx.data"))
    assert onnx_source.source_sha256(folder / "bert.onnx") == before
    result = optkit.convert(
        folder / "bert.onnx", "fp32", tmp_path / "o", data=str(folder / "tokens.npz"), overrides=FAST
    )
    assert result.approved, [(g.name, g.value, g.status) for g in result.gates]
    assert result.source.sha256 == before and result.accuracy.metrics["max_abs_error"] < 1e-4
    data = bytearray((folder / "bert.onnx.data").read_bytes())
    data[100] ^= 1
    (folder / "bert.onnx.data").write_bytes(bytes(data))
    assert onnx_source.source_sha256(folder / "bert.onnx") != before  # a changed weight changes the source hash


def test_missing_external_data_is_named(bert_onnx, tmp_path):
    shutil.copy(bert_onnx / "bert.onnx", tmp_path / "bert.onnx")
    with pytest.raises(SourceModelError, match=r"external data file\(s\) \['bert.onnx.data'\] that are missing"):
        onnx_source.load(tmp_path / "bert.onnx", tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_onnx_is_one_line_exit_2(tiny_sklearn, tmp_path, keep):
    data = tiny_sklearn["onnx"].read_bytes()
    broken = tmp_path / "model.onnx"
    broken.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(SourceModelError, match="truncated or corrupt|not a valid ONNX model"):
        onnx_source.load(broken, tmp_path)
    cli = runner.invoke(
        app,
        [
            "convert",
            str(broken),
            "--recipe",
            "sklearn-fp32",
            "--data",
            str(tiny_sklearn["npz"]),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert cli.exit_code == 2 and cli.output.strip().splitlines()[-1].startswith("source model error: ")
    assert "Traceback" not in cli.output and not (tmp_path / "o").exists()


def test_graph_that_fails_the_checker(tmp_path):
    node = helper.make_node("Relu", ["nowhere"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "bad.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(SourceModelError, match="not a valid ONNX model"):
        onnx_source.load(path, tmp_path)


def test_text_named_onnx_is_not_onnx(tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_text("hello, I am a model")
    with pytest.raises(SourceModelError, match=r"not an ONNX model \(its content is text\)"):
        onnx_source.load(fake, tmp_path)


def test_zipmap_output_is_refused_with_the_fix(tmp_path):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    path = tmp_path / "zipmap.onnx"
    onnx.save_model(to_onnx(LogisticRegression().fit(x, [0, 1] * 10), x[:1]), str(path))
    with pytest.raises(SourceModelError, match="zipmap"):
        onnx_source.load(path, tmp_path)


def _checker_valid_but_not_runnable(tmp_path, problem):
    """A model onnx.checker accepts but ONNX Runtime refuses: an op of a domain ORT lacks, or an Add
    of float32 and int64 (the checker does not infer types)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])
    feeds = {"x": np.ones((3, 4), np.float32)}
    if problem == "unknown op":
        node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
        inputs, opsets = [x], [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    else:
        inputs = [x, helper.make_tensor_value_info("k", TensorProto.INT64, ["n", 4])]
        node, opsets = helper.make_node("Add", ["x", "k"], ["y"]), [helper.make_opsetid("", 17)]
        feeds["k"] = np.ones((3, 4), np.int64)
    model = helper.make_model(helper.make_graph([node], "g", inputs, [y]), opset_imports=opsets)
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "model.onnx"))
    np.savez(tmp_path / "data.npz", **feeds)
    return tmp_path / "model.onnx", tmp_path / "data.npz"


@pytest.mark.parametrize("problem", ["unknown op", "type mismatch"])
def test_onnx_runtime_refusing_the_source_is_a_source_model_error(tmp_path, problem):
    path, data = _checker_valid_but_not_runnable(tmp_path, problem)
    source = onnx_source.load(path, tmp_path)  # onnx.checker passes
    with pytest.raises(SourceModelError, match="ONNX Runtime cannot load the source model"):
        source.runner(1)
    result = runner.invoke(
        app, ["convert", str(path), "--recipe", "fp32", "--data", str(data), "-o", str(tmp_path / "out")]
    )
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("source model error: ONNX Runtime cannot load the source model"), last
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
