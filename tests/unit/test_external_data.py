"""Models over 2 GB keep their weights in ``model.onnx.data``: written, listed in the manifest with
its sha256, verified byte for byte. A tiny threshold makes the tiny model take that path."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import optkit
from optkit.artifact.revalidate import revalidate
from optkit.artifact.verify import verify_artifact
from optkit.cli.app import app
from optkit.hashing import sha256_file
from tests_support import FAST

runner = CliRunner()


@pytest.fixture(scope="module")
def external(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("ext") / "art"
    args = [
        "convert",
        str(tiny["pt"]),
        "--recipe",
        "ner-int8",
        "--data",
        str(tiny["conll"]),
        "-o",
        str(out),
        "--set",
        "artifact.external_data_threshold_mb=0.001",
    ] + [f"--set={k}={v}" for k, v in FAST.items()]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_weights_go_to_model_onnx_data_listed_with_their_sha256(external):
    manifest = json.loads((external / "manifest.json").read_text())
    assert sorted(manifest["files"]) == [
        "attestation.intoto.json",
        "model.onnx",
        "model.onnx.data",
        "report.html",
        "report.md",
    ]
    data = external / "model.onnx.data"
    assert manifest["files"]["model.onnx.data"] == {"sha256": sha256_file(data), "bytes": data.stat().st_size}
    assert data.stat().st_size > (external / "model.onnx").stat().st_size / 10  # the weights are there
    assert verify_artifact(external).ok


@pytest.mark.parametrize("where", [0, -1])
def test_one_byte_changed_in_the_data_file_is_detected(external, tmp_path, where):
    import shutil

    copy = tmp_path / "art"
    shutil.copytree(external, copy)
    data = bytearray((copy / "model.onnx.data").read_bytes())
    data[where] ^= 0x01
    (copy / "model.onnx.data").write_bytes(bytes(data))
    assert verify_artifact(copy).problems == ["modified file: model.onnx.data (sha256 differs from the manifest)"]
    cli = runner.invoke(app, ["verify", str(copy)])
    assert cli.exit_code == 1 and "model.onnx.data" in cli.output


def test_external_data_artifact_revalidates(external, tiny):
    assert revalidate(external, str(tiny["conll"])).ok


def test_python_api_writes_the_same_files(tiny, tmp_path):
    overrides = {**FAST, "artifact.external_data_threshold_mb": 0.001, "passes": []}
    result = optkit.convert(tiny["pt"], "fp32", tmp_path / "o", data=str(tiny["conll"]), overrides=overrides)
    assert result.approved and sorted(result.manifest.files) == [
        "attestation.intoto.json",
        "model.onnx",
        "model.onnx.data",
        "report.html",
        "report.md",
    ]
