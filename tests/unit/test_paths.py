"""Non-regular paths (FIFO, device, socket, folder) are refused by type, without being opened."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from optkit.errors import DataError, SourceModelError
from optkit.paths import check_writable_file, require_regular


def special(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.conll"
        os.mkfifo(path)
        return path, "a FIFO"
    if kind == "device":
        return "/dev/zero", "a character device"
    if kind == "socket":
        path = tmp_path / "s.npz"
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        return path, "a socket"
    path = tmp_path / "folder.npz"
    path.mkdir()
    return path, "a folder"


@pytest.mark.parametrize("kind", ["fifo", "device", "socket", "folder"])
def test_require_regular_names_the_kind(tmp_path, kind):
    path, what = special(tmp_path, kind)
    with pytest.raises(DataError, match=f"is not a regular file \\(it is {what}") as err:
        require_regular(path, "validation data", DataError)
    assert "not found" not in err.value.message
    with pytest.raises(DataError, match="not found"):
        require_regular(tmp_path / "missing.npz", "validation data", DataError)
    if kind == "folder":
        assert require_regular(path, "source model", SourceModelError, allow_dir=True) == path
    else:
        with pytest.raises(SourceModelError, match="is not a regular file or folder"):
            require_regular(path, "source model", SourceModelError, allow_dir=True)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_cli_refuses_fifo_or_device_as_data_and_model_without_blocking(tiny, tmp_path, kind):
    """A FIFO nobody writes to would block open() for ever: the child is killed by the timeout then."""
    path, what = special(tmp_path, kind)
    env = {**os.environ, "COLUMNS": "200"}
    for args, prefix in (
        ([str(tiny["pt"]), "--data", str(path)], "data error: validation data"),
        ([str(path)], "source model error: source model"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "optkit.cli.app", "convert", *args, "--recipe", "fp32", "-o", str(tmp_path / "o")],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 2, done.stderr
        assert last.startswith(prefix) and f"it is {what}" in last, last
    assert not (tmp_path / "o").exists()


def test_check_writable_file(tmp_path):
    from optkit.errors import OutputError

    assert check_writable_file(tmp_path / "r.xml", "--junit-xml") == tmp_path / "r.xml"
    (tmp_path / "old.xml").write_text("x")
    check_writable_file(tmp_path / "old.xml", "--junit-xml")  # replaced at the end
    with pytest.raises(OutputError, match="is a folder"):
        check_writable_file(tmp_path, "--junit-xml")
    with pytest.raises(OutputError, match="does not exist"):
        check_writable_file(tmp_path / "no" / "r.xml", "--junit-xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.xml"], "the probe file is removed"
