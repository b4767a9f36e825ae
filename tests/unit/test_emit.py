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
