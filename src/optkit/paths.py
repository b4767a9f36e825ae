"""Checks on the user's paths before any work, and atomic writes of single files.

A FIFO, a device or a socket given as a model or data path is refused by its file type (from
``os.stat``, which never opens the path, so a FIFO cannot block the run). Report files (JUnit XML)
are checked for writability before the run starts, and written through a temporary sibling
renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from optkit.errors import OptkitError, OutputError

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def file_kind(mode: int) -> str:
    """What ``st_mode`` ``mode`` is, in words: ``"a regular file"``, ``"a FIFO (named pipe)"``, ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def require_regular(path: str | Path, what: str, error_cls: type[OptkitError], allow_dir: bool = False) -> Path:
    """Check that ``path`` exists and is a regular file (or, with ``allow_dir``, a folder), without
    opening it. Symbolic links are followed.

    Args:
        path: the path the user gave.
        what: how to name it in the message, e.g. ``"validation data"``, ``"source model"``.
        error_cls: the :class:`~optkit.errors.OptkitError` subclass to raise, e.g. ``DataError``.
        allow_dir: accept a folder too (model folders).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        error_cls: ``"<what> not found: <path>"`` when it does not exist (or cannot be reached);
            ``"<what> <path> is not a regular file[ or folder] (it is a FIFO ...)"`` for a FIFO,
            device, socket (or a folder without ``allow_dir``).
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error_cls(f"{what} not found: {path}", "check the path") from None
    except OSError as exc:  # ENOTDIR, EACCES, ELOOP, ENAMETOOLONG
        raise error_cls(
            f"{what} {path} cannot be reached: {exc.strerror or exc}",
            "check the path and the permissions of its folders",
        ) from None
    if stat.S_ISREG(mode) or (allow_dir and stat.S_ISDIR(mode)):
        return path
    expected = "a regular file or folder" if allow_dir else "a regular file"
    raise error_cls(
        f"{what} {path} is not {expected} (it is {file_kind(mode)})",
        "pass a file (not a pipe, device or socket); save a stream to a file first",
    )


def check_writable_file(path: str | Path, flag: str) -> Path:
    """Fail before the run when the report file ``path`` could not be written at the end.

    The parent folder must exist and accept a new file (probed by creating and removing a temporary
    file there, which also catches read-only mounts and ACLs that ``os.access`` misses); ``path``
    itself must not be a folder or another non-regular file.

    Args:
        path: the file to write later, e.g. the ``--junit-xml`` path.
        flag: the option that named it, for the message, e.g. ``"--junit-xml"``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputError: one line naming ``path``, why it cannot be written, and the fix.
    """
    path = Path(path)
    hint = f"choose a {flag} path in an existing writable folder"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputError(f"{flag} {path} cannot be written: {exc.strerror or exc}", hint) from None
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputError(
            f"{flag} {path} is {file_kind(mode)}, not a file", "pass a file path, e.g. reports/optkit.xml"
        )
    parent = path.parent
    if not parent.is_dir():
        what = "does not exist" if not parent.exists() else "is not a folder"
        raise OutputError(
            f"{flag} {path} cannot be written: folder {parent} {what}", f"create the folder first, or {hint}"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe-", dir=parent)
    except OSError as exc:
        raise OutputError(f"{flag} {path} cannot be written: {exc.strerror or exc} ({parent})", hint) from None
    os.close(fd)
    os.unlink(probe)
    return path


def write_atomic(path: str | Path, data: bytes, what: str) -> None:
    """Write ``data`` to ``path`` through a temporary sibling file renamed into place, so ``path``
    is either its old content or the complete new one; the temporary file is removed on failure.

    Args:
        path: the destination file; its folder must exist.
        data: the complete content.
        what: how to name the file in the message, e.g. ``"--junit-xml"``.

    Raises:
        OutputError: the file cannot be written (missing or read-only folder, a folder at ``path``,
            disk full), in one line naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise OutputError(
            f"cannot write {what} {path}: {exc.strerror or exc}", "choose a path in a writable folder with free space"
        ) from exc
