"""Write the artifact folder atomically: everything goes into a hidden temporary sibling folder,
which is renamed into place only when complete. A run that fails or is interrupted leaves no
folder that claims approval (the temporary folder is removed)."""

from __future__ import annotations

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


@contextmanager
def staging(output: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``output``; it is deleted if the block raises."""
    parent = output.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
