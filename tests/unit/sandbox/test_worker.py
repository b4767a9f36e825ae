"""The source-model worker: the protocol, confinement of a hostile model, and a worker that dies."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest

from optkit.errors import DataError, SourceModelError
from optkit.hashing import hash_path
from optkit.registry import FRAMEWORKS
from optkit.sandbox.client import SourceWorker
from optkit.sandbox.landlock import abi_version
from optkit.sandbox.protocol import WorkerCallError, raise_error
from optkit.sandbox.source import load_source

needs_landlock = pytest.mark.skipif(abi_version() == 0, reason="this kernel has no Landlock")


class _WriteOnLoad:
    """A pickle gadget: unpickling it calls ``open(target, "w")`` (what a hostile model file does)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (eval, (f"open({self.target!r}, 'w').write('pwned')",))


def test_arrays_cross_without_pickles_symlinks_or_fifos(tmp_path):
    from optkit.sandbox.arrays import InputFolder, OutputFolder, read_inputs, read_outputs

    inputs = InputFolder(tmp_path / "in")
    names = inputs.write({"x": np.arange(6, dtype=np.int64).reshape(2, 3), "y/../z": np.ones(2, np.float32)})
    assert [n for n, _ in names] == ["x", "y/../z"] and all("/" not in f for _, f in names)
    back = read_inputs(tmp_path / "in", names)
    assert back["x"].tolist() == [[0, 1, 2], [3, 4, 5]] and back["y/../z"].dtype == np.float32
    inputs.clear()
    assert not list((tmp_path / "in").glob("*.npy")), "input files are removed once answered"
    scratch = tmp_path / "scratch"
    out = OutputFolder(scratch / "io").write({"logits": np.ones((2, 2))})
    assert read_outputs(scratch, out)["logits"].shape == (2, 2) and not list((scratch / "io").iterdir())
    secret = tmp_path / "secret.npy"
    np.save(secret, np.arange(3))
    (scratch / "io" / "out-7.npy").symlink_to(secret)
    os.mkfifo(scratch / "io" / "out-8.npy")
    np.save(scratch / "io" / "out-9.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for file in ("out-7.npy", "out-8.npy", "out-9.npy", "../secret.npy"):
        with pytest.raises(SourceModelError):
            read_outputs(scratch, [["o", file]])
    assert secret.exists(), "a planted symlink never makes optkit read or delete the user's file"


def test_input_files_are_never_written_through_a_planted_symlink(tmp_path):
    from optkit.sandbox.arrays import InputFolder

    folder = InputFolder(tmp_path / "in")
    victim = tmp_path / "bashrc"
    victim.write_text("the user's")
    (tmp_path / "in" / "in-0.npy").symlink_to(victim)
    with pytest.raises(FileExistsError):
        folder.write({"x": np.ones(2)})
    assert victim.read_text() == "the user's"


def test_worker_errors_keep_their_kind_or_become_worker_call_errors():
    with pytest.raises(DataError, match="bad rows"):
        raise_error({"type": "DataError", "message": "bad rows", "hint": "fix them"})
    with pytest.raises(WorkerCallError, match="RuntimeError: boom"):
        raise_error({"type": "RuntimeError", "message": "boom"})
    with pytest.raises(WorkerCallError):  # an exception type name is never used to pick a class
        raise_error({"type": "SystemExit", "message": "x"})


def test_worker_loads_runs_times_and_exports_a_model_confined(tiny_sklearn, tmp_path):
    from optkit.recipe import ExportConfig

    with SourceWorker(tmp_path, [tiny_sklearn["skops"]]) as worker:
        source = load_source(worker, FRAMEWORKS["sklearn"], tiny_sklearn["skops"], threads=1)
        assert source.info.input_names == ["X"] and source.kind == "skops"
        assert source.sha256() == hash_path(tiny_sklearn["skops"])
        x = np.load(tiny_sklearn["npz"])["X"][:5].astype(np.float32)
        runner = source.runner(1)
        first, second = runner.infer_many([{"X": x[:2]}, {"X": x[2:]}])
        assert first["probabilities"].shape == (2, 3) and second["label"].shape == (3,)
        assert len(runner.time_calls({"X": x}, 1, 3)) == 3 and runner.process_rss_mb() > 0
        assert runner.time_pass([{"X": x[:2]}, {"X": x[2:]}], warm=True) > 0  # one request, in the worker
        assert runner.process_id() == worker.pid
        outcome = source.export({"X": x[:2]}, ExportConfig(), tmp_path / "exported.onnx", 1800.0)
        assert outcome.model_path == tmp_path / "exported.onnx" and outcome.model_path.is_file()
        assert not list((tmp_path / "source").rglob("*.onnx")), "the export is moved out of the worker's folder"
        if abi_version():
            assert worker.sandbox.status == "confined" and worker.sandbox.details["filesystem"] is True


@needs_landlock
def test_a_model_that_writes_a_file_when_loaded_is_stopped(tmp_path):
    target = tmp_path / "outside" / "pwned.txt"
    target.parent.mkdir()
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps(_WriteOnLoad(str(target))))
    with (
        SourceWorker(tmp_path / "work", [model]) as worker,
        pytest.raises(SourceModelError, match="the sandbox stopped the source model"),
    ):
        load_source(worker, FRAMEWORKS["sklearn"], model, threads=1, trust_pickle=True, trust_model_code=True)
    assert not target.exists()
    assert not (tmp_path / "pwned.txt").exists()


def test_sandbox_off_is_recorded(tiny_sklearn, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTKIT_SANDBOX", "off")
    with SourceWorker(tmp_path, [tiny_sklearn["skops"]]) as worker:
        assert worker.sandbox.status == "off"


def test_a_worker_that_dies_is_a_one_line_source_model_error(tiny_sklearn, tmp_path):
    with SourceWorker(tmp_path, [tiny_sklearn["skops"]]) as worker:
        load_source(worker, FRAMEWORKS["sklearn"], tiny_sklearn["skops"], threads=1)
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(SourceModelError, match="killed by signal 9"):
            worker.call("runner", device="cpu", threads=1)


@needs_landlock
def test_cli_refuses_a_hostile_pickle_and_nothing_is_written(tmp_path):
    target = tmp_path / "pwned.txt"
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps(_WriteOnLoad(str(target))))
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "optkit.cli.app",
            "convert",
            str(model),
            "--recipe",
            "sklearn-fp32",
            "--trust-pickle",
            "--trust-model-code",
            "-o",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 2, done.stderr
    assert not target.exists() and not out.exists()
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()[-1]) > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("optkit-")]
    assert done.stdout.strip() == "", "no JSON result for a run that never started"


def test_files_the_worker_names_are_taken_only_if_they_are_its_own(tmp_path):
    from optkit.sandbox.arrays import copy_worker_file

    scratch, secret = tmp_path / "scratch", tmp_path / "secret.txt"
    (scratch / "export").mkdir(parents=True)
    secret.write_text("the user's")
    (scratch / "export" / "link.onnx").symlink_to(secret)
    (scratch / "dir").symlink_to(tmp_path)
    for named in ("export/link.onnx", "../secret.txt", "dir/secret.txt", "export/missing.onnx", "/etc/passwd"):
        with pytest.raises(SourceModelError):
            copy_worker_file(scratch, named, tmp_path / "taken.onnx")
    assert secret.read_text() == "the user's" and not (tmp_path / "taken.onnx").exists()
    (scratch / "export" / "model.onnx").write_bytes(b"onnx")
    copy_worker_file(scratch, "export/model.onnx", tmp_path / "taken.onnx")
    assert (tmp_path / "taken.onnx").read_bytes() == b"onnx" and not (scratch / "export" / "model.onnx").exists()


def test_the_worker_gets_no_secrets_from_optkits_environment(tmp_path, monkeypatch):
    from optkit.sandbox.client import worker_environment

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("OPTKIT_SIGN_KEY_PASSWORD", "pw")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    env = worker_environment(tmp_path)
    assert "AWS_SECRET_ACCESS_KEY" not in env and "OPTKIT_SIGN_KEY_PASSWORD" not in env
    assert env["OMP_NUM_THREADS"] == "2" and env["HOME"] == str(tmp_path) and env["PYTHONSAFEPATH"] == "1"
