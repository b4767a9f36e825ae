"""Write the artifact folder atomically: everything goes into a hidden temporary sibling folder,
which is renamed into place only when complete. A run that fails or is interrupted leaves no
folder that claims approval (the temporary folder is removed)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from optkit.errors import OutputError


def check_output(output: Path, overwrite: bool) -> None:
    """Fail early (before any work) when ``output`` cannot be written.

    Raises:
        OutputError: it exists and ``overwrite`` is False, it is a file, or its parent is not writable.
    """
    if output.exists() and not output.is_dir():
        raise OutputError(f"output path {output} is a file", "choose a folder path with -o")
    if output.exists() and not overwrite:
        raise OutputError(f"output folder {output} already exists", "pass --overwrite or choose another -o")
    parent = output.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write to {parent}", "choose a writable -o folder")


FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextmanager
def staging(output: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``output``; it is deleted if the block raises
    (Ctrl-C included).

    Raises:
        OutputError: the folder cannot be created, or the block fails to write a file (``OSError``:
            disk full, quota, read-only file system, permissions), named in one line.
    """
    parent = output.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=parent))
    except OSError as exc:
        raise write_error(output, exc) from exc
    try:
        yield tmp
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(output, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_error(output: Path, exc: OSError) -> OutputError:
    """The one-line :class:`OutputError` for an ``OSError`` raised while writing the artifact
    ``output``: a full disk (``ENOSPC``, ``EDQUOT``, ``EFBIG``) or any other write failure."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f" ({Path(exc.filename).name})" if exc.filename else ""
    if exc.errno in FULL_DISK:
        return OutputError(f"no space left to write the artifact {output}: {reason}{where}; nothing was written",
                           "free disk space on that file system, or choose another -o")
    return OutputError(f"cannot write the artifact {output}: {reason}{where}; nothing was written",
                       "check that the -o folder's file system is writable and has free space")


def publish(tmp: Path, output: Path, overwrite: bool) -> None:
    """Rename the complete ``tmp`` folder to ``output``.

    With ``overwrite`` an existing ``output`` is first renamed aside and deleted after the swap,
    so ``output`` is at every moment either the old artifact or the new one.

    Raises:
        OutputError: ``output`` appeared meanwhile (another run) and ``overwrite`` is False.
    """
    old = None
    if output.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise OutputError(f"output folder {output} was created by another run meanwhile",
                              "pass --overwrite or choose another -o")
        old = output.parent / f".{output.name}.old-{os.getpid()}"
        os.rename(output, old)
    try:
        os.rename(tmp, output)
    except OSError as exc:
        if old is not None:
            os.rename(old, output)
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot move the artifact into {output}: {exc}",
                          "another run may be writing the same folder; choose another -o") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
