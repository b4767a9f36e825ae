"""Atomic artifact writing."""

from __future__ import annotations

import pytest

from optkit.artifact.emit import check_output, publish, staging
from optkit.errors import OutputError


def test_existing_output_refused_without_overwrite(tmp_path):
    out = tmp_path / "art"
    out.mkdir()
    with pytest.raises(OutputError, match="--overwrite"):
        check_output(out, overwrite=False)
    check_output(out, overwrite=True)


def test_output_that_is_a_file(tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output(out, overwrite=True)


def test_publish_swaps_atomically(tmp_path):
    out = tmp_path / "art"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with staging(out) as tmp:
        (tmp / "new.txt").write_text("new")
        publish(tmp, out, overwrite=True)
    assert (out / "new.txt").read_text() == "new" and not (out / "old.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["art"], "no temporary folders left behind"


def test_failure_inside_staging_leaves_nothing(tmp_path):
    out = tmp_path / "art"
    with pytest.raises(RuntimeError):
        with staging(out) as tmp:
            (tmp / "model.onnx").write_text("half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writer_is_detected(tmp_path):
    out = tmp_path / "art"
    with pytest.raises(OutputError, match="another run"):
        with staging(out) as tmp:
            out.mkdir()  # another run published first
            publish(tmp, out, overwrite=False)
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_oserror_while_staging_is_one_line_output_error(tmp_path):
    import errno

    out = tmp_path / "art"
    with pytest.raises(OutputError, match=r"no space left to write the artifact .*art: No space left on device "
                                          r"\(model.onnx\); nothing was written") as err:
        with staging(out) as tmp:
            (tmp / "model.onnx").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "model.onnx"))
    assert "free disk space" in err.value.hint and _leftovers(tmp_path) == []
    with pytest.raises(OutputError, match="cannot write the artifact .*Read-only file system"):
        with staging(out):
            raise OSError(errno.EROFS, "Read-only file system")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("failing", ["model.onnx", "report.md"])
def test_disk_full_while_writing_the_artifact(tiny, tmp_path, monkeypatch, failing):
    """ENOSPC in the middle of writing model.onnx (onnx.save_model) or report.md: one-line error,
    exit 2, no output folder, no staging folder, no temporary work folder."""
    import errno
    import pathlib
    import tempfile

    import onnx
    from typer.testing import CliRunner

    from optkit.cli.app import app
    from tests_support import FAST

    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    real_save, real_write = onnx.save_model, pathlib.Path.write_text

    def full(path):
        with open(path, "wb") as handle:
            handle.write(b"\x08\x08")  # a few bytes made it to disk
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    def save_model(model, path, *args, **kwargs):
        if failing == "model.onnx" and ".tmp-" in str(path):
            full(path)
        return real_save(model, path, *args, **kwargs)

    def write_text(self, *args, **kwargs):
        if failing == "report.md" and self.name == "report.md" and ".tmp-" in str(self):
            full(self)
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(onnx, "save_model", save_model)
    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    out = tmp_path / "runs" / "art"
    args = ["convert", str(tiny["pt"]), "--recipe", "ner-int8", "--data", str(tiny["conll"]), "-o", str(out),
            "--set", "passes=[]"] + [f"--set={k}={v}" for k, v in FAST.items()]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("output error: no space left to write the artifact") and f"({failing})" in last
    assert "Traceback" not in result.output
    assert _leftovers(out.parent) == [], "no output folder and no staging folder"
    assert [p.name for p in work.iterdir() if p.name.startswith("optkit-")] == []
