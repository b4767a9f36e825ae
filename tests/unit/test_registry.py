"""Framework detection and the missing-framework message."""

from __future__ import annotations

import sys

import pytest

from optkit.errors import DependencyError, SourceModelError
from optkit.recipe import PASS_TYPES
from optkit.registry import FRAMEWORKS, PASSES, detect_framework


@pytest.mark.parametrize(
    "name,expected",
    [
        ("m.pt", "torch"),
        ("m.pt2", "torch"),
        ("m.keras", "tensorflow"),
        ("m.skops", "sklearn"),
        ("m.joblib", "sklearn"),
        ("m.pdmodel", "paddle"),
        ("m.onnx", "onnx"),
    ],
)
def test_detect_by_file(tmp_path, name, expected):
    path = tmp_path / name
    path.write_bytes(b"x")
    assert detect_framework(path).name == expected


def test_detect_folders(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "pd").mkdir()
    (tmp_path / "pd" / "model.pdiparams").write_bytes(b"")
    assert [detect_framework(tmp_path / d).name for d in ("hf", "sm", "pd")] == ["torch", "tensorflow", "paddle"]


def test_unknown_file_and_framework(tmp_path):
    path = tmp_path / "model.xyz"
    path.write_bytes(b"x")
    with pytest.raises(SourceModelError, match="--framework"):
        detect_framework(path)
    with pytest.raises(SourceModelError, match="torch"):
        detect_framework(path, "caffe")
    assert detect_framework(path, "sklearn").name == "sklearn"


def test_every_pass_type_is_registered():
    assert set(PASSES) == set(PASS_TYPES)


def test_missing_framework_names_the_extra(tmp_path, monkeypatch):
    from optkit.sources import tf_source

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow now raises ImportError
    with pytest.raises(DependencyError) as err:
        tf_source.load(tmp_path / "m.keras", tmp_path)
    assert "optkit[tf]" in str(err.value) and set(FRAMEWORKS) == {"onnx", "torch", "tensorflow", "paddle", "sklearn"}


def test_detection_goes_by_content_when_the_extension_lies(tiny, tiny_sklearn, tmp_path):
    import shutil

    onnx_as_pt = tmp_path / "model.pt"
    shutil.copy(tiny_sklearn["onnx"], onnx_as_pt)
    torchscript_as_onnx = tmp_path / "model.onnx"
    shutil.copy(tiny["pt"], torchscript_as_onnx)
    assert detect_framework(onnx_as_pt).name == "onnx"
    assert detect_framework(torchscript_as_onnx).name == "torch"
    assert detect_framework(tiny_sklearn["onnx"].with_suffix(".skops")).name == "sklearn"  # a skops zip is not torch


def test_undetectable_file_names_its_content(tiny_sklearn, tmp_path):
    import zipfile

    other_zip = tmp_path / "model.onnx"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(SourceModelError, match=r"extension '\.onnx', content: a zip archive"):
        detect_framework(other_zip)
