"""model_read_paths: a model file grants itself and its companions, never its folder (nor the home)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_landlock import CONFINE, needs_landlock, run_child

from optkit.sandbox.read_paths import model_read_paths

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _add_model(weights: np.ndarray) -> onnx.ModelProto:
    """y = x + w, with w an initializer."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(weights, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _point_at(model: onnx.ModelProto, location: str, length: int) -> onnx.ModelProto:
    """Make initializer ``w`` external data at ``location`` (whatever it is) without writing it."""
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)
    return model


def test_a_folder_grants_itself(tmp_path):
    assert model_read_paths(tmp_path) == [tmp_path.resolve()]


def test_a_file_in_a_home_grants_only_itself(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "model.pkl").write_bytes(b"\x80\x04N.")
    (home / ".bashrc").write_text("secret")
    (home / "modelx.bin").write_text("not a companion")
    assert model_read_paths(home / "model.pkl") == [(home / "model.pkl").resolve()]


def test_paddle_companions_are_granted_and_symlinks_out_are_not(tmp_path):
    folder, outside = tmp_path / "m", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    for name in ("model.pdmodel", "model.pdiparams", "model.pdiparams.info", "other.pdiparams", "model_x.txt"):
        (folder / name).write_bytes(b"x")
    (outside / "secret").write_text("secret")
    (folder / "model.evil").symlink_to(outside / "secret")
    (folder / "model.alias").symlink_to(folder / "model.pdiparams")  # inside: granted by its target
    got = model_read_paths(folder / "model.pdmodel")
    assert got == [(folder / n).resolve() for n in ("model.pdmodel", "model.pdiparams", "model.pdiparams.info")]


def test_onnx_external_data_is_granted(tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    folder = tmp_path / "m"
    (folder / "weights").mkdir(parents=True)
    model = _add_model(np.arange(2, dtype=np.float32))
    convert_model_to_external_data(model, location="weights/w.bin", size_threshold=0)
    onnx.save(model, folder / "net.onnx")
    (folder / "unrelated.bin").write_bytes(b"x")
    assert model_read_paths(folder / "net.onnx") == [
        (folder / "net.onnx").resolve(),
        (folder / "weights" / "w.bin").resolve(),
    ]
    os.rename(folder / "net.onnx", folder / "net.model")  # detected by content, not by suffix
    assert (folder / "weights" / "w.bin").resolve() in model_read_paths(folder / "net.model")


@pytest.mark.parametrize("location", ["../secret", "weights/../../secret", "/abs/secret", "..\\secret"])
def test_onnx_external_data_outside_the_folder_is_not_granted(tmp_path, location):
    folder = tmp_path / "m"
    folder.mkdir()
    (tmp_path / "secret").write_bytes(b"\0" * 8)
    location = location.replace("/abs", str(tmp_path))
    (folder / "net.onnx").write_bytes(_point_at(_add_model(np.zeros(2, np.float32)), location, 8).SerializeToString())
    assert model_read_paths(folder / "net.onnx") == [(folder / "net.onnx").resolve()]


def test_a_missing_path_and_a_broken_onnx_file_never_raise(tmp_path):
    assert model_read_paths(tmp_path / "nope.onnx") == [(tmp_path / "nope.onnx").resolve()]
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage")
    assert model_read_paths(tmp_path / "bad.onnx") == [(tmp_path / "bad.onnx").resolve()]


READ = """
def read(path):
    return Path(path).read_bytes()[:16].hex()
attempt("model", lambda: read(args["model"]))
attempt("secret", lambda: read(args["secret"]))
attempt("list_home", lambda: sorted(os.listdir(args["home"])))
"""


@needs_landlock
def test_the_confined_worker_reads_the_model_but_not_the_home_beside_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "model.pkl").write_bytes(b"\x80\x04N.")
    (home / "secret.txt").write_text("secret")
    got = run_child(
        CONFINE + READ,
        tmp_path / "scratch",
        models=model_read_paths(home / "model.pkl"),
        model=home / "model.pkl",
        secret=home / "secret.txt",
        home=home,
    )
    assert got["model"] == ["ok", b"\x80\x04N.".hex()]
    assert got["secret"][0] == "PermissionError" and got["list_home"][0] == "PermissionError"
    assert str(home.resolve()) not in got["confinement"]["read_only"]


@needs_landlock
def test_onnxruntime_loads_external_data_with_only_the_granted_files(tmp_path):
    pytest.importorskip("onnxruntime")
    from onnx.external_data_helper import convert_model_to_external_data

    folder = tmp_path / "m"
    folder.mkdir()
    model = _add_model(np.array([10.0, 20.0], dtype=np.float32))
    convert_model_to_external_data(model, location="net.onnx.data", size_threshold=0)
    onnx.save(model, folder / "net.onnx")
    (folder / "secret.txt").write_text("secret")
    code = (
        CONFINE
        + READ
        + """
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(args["model"], providers=["CPUExecutionProvider"])
out["y"] = session.run(None, {"x": np.array([1.0, 2.0], dtype=np.float32)})[0].tolist()
"""
    )
    got = run_child(
        code,
        tmp_path / "scratch",
        models=model_read_paths(folder / "net.onnx"),
        model=folder / "net.onnx",
        secret=folder / "secret.txt",
        home=folder,
    )
    assert got["y"] == [11.0, 22.0]
    assert got["secret"][0] == "PermissionError"
