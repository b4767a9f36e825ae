"""Arrays and files across the worker boundary, handled so that a hostile worker cannot turn them
against optkit's own (unconfined) process.

* Inputs go the safe way: optkit writes them into a folder of its own (``workdir/in``) that the
  worker may only read, each file created new (``O_EXCL | O_NOFOLLOW``).
* Outputs come back as ``.npy`` files in the worker's scratch folder. optkit opens each by name
  inside that folder (``openat`` from a descriptor of the folder, ``O_NOFOLLOW | O_NONBLOCK``: a
  symlink or FIFO the worker planted is refused, never followed or waited on), checks it is a
  regular file under a size cap, and reads it with ``numpy.load(allow_pickle=False)``: an object
  array (which would unpickle code) is refused.
* Files optkit keeps (the exported model, tokenizer files) are copied out of the worker's folder
  through the same checks into new files of optkit's own, so the worker can change neither the path
  nor, through a descriptor it kept open, the content afterwards.
"""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path

import numpy as np

from optkit.errors import SourceModelError

Feeds = dict[str, np.ndarray]

#: the largest array file optkit reads back from the worker (bytes): 8 GB
MAX_ARRAY_BYTES = 8 * 10**9


class InputFolder:
    """Where optkit writes the worker's input arrays (a folder the worker may only read).

    Files are named ``in-<counter>.npy`` (never after a tensor name, which could hold ``/``);
    :meth:`clear` removes them once the worker has answered.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()

    def write(self, feeds: Feeds) -> list[list[str]]:
        """Save each array as a new file; returns ``[[tensor name, file name], ...]`` in order."""
        names = []
        for name, array in feeds.items():
            file = f"in-{next(self._counter)}.npy"
            fd = os.open(self.folder / file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
            names.append([name, file])
        return names

    def clear(self) -> None:
        """Remove the input files written so far."""
        for path in self.folder.glob("in-*.npy"):
            path.unlink(missing_ok=True)


def read_inputs(folder: Path, names: list[list[str]]) -> Feeds:
    """The worker's side: load the arrays optkit wrote (``allow_pickle=False``).

    Raises:
        ValueError: a file name that leaves the folder, or an object array.
    """
    feeds: Feeds = {}
    for name, file in names:
        if Path(file).name != file or not file.endswith(".npy"):
            raise ValueError(f"bad array file name in protocol message: {file!r}")
        feeds[str(name)] = np.load(folder / file, allow_pickle=False)
    return feeds


class OutputFolder:
    """The worker's side: where it saves output arrays (``out-<counter>.npy`` in its scratch)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()

    def write(self, feeds: Feeds) -> list[list[str]]:
        """Save each array; returns ``[[tensor name, file name], ...]`` in order."""
        names = []
        for name, array in feeds.items():
            file = f"out-{next(self._counter)}.npy"
            np.save(self.folder / file, np.ascontiguousarray(array), allow_pickle=False)
            names.append([str(name), file])
        return names


def open_worker_file(scratch: Path, relative: str, max_bytes: int = MAX_ARRAY_BYTES, remove: bool = False) -> int:
    """A read-only descriptor of the regular file ``scratch/relative`` made by the worker, opened one
    path component at a time with ``O_NOFOLLOW`` (a symlink anywhere on the way is refused) and
    ``O_NONBLOCK`` (a FIFO never blocks), at most ``max_bytes`` long; with ``remove`` its name is
    unlinked from the same folder descriptor (the open descriptor still reads it).

    Raises:
        SourceModelError: the path leaves the folder, is not a regular file, is too large, or
            cannot be opened.
    """
    parts = Path(relative).parts
    if not parts or any(p in ("", ".", "..") or "/" in p for p in parts) or Path(relative).is_absolute():
        raise SourceModelError(
            f"the source model's worker named a file outside its folder: {relative!r}",
            "a hostile or broken model; optkit does not follow it",
        )
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(scratch, flags | os.O_DIRECTORY)
    try:
        for folder in parts[:-1]:
            next_fd = os.open(folder, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
        if remove:
            os.unlink(parts[-1], dir_fd=fd)
    except OSError as exc:
        raise SourceModelError(
            f"the source model's worker reported a file optkit cannot take: {relative} ({exc.strerror})",
            "a hostile or broken model; optkit does not follow it",
        ) from exc
    finally:
        os.close(fd)
    info = os.fstat(file_fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(file_fd)
        raise SourceModelError(
            f"the source model's worker reported {relative}, which is not a regular file of at "
            f"most {max_bytes:,} bytes",
            "a hostile or broken model; optkit does not follow it",
        )
    return file_fd


def read_outputs(scratch: Path, names: list[list[str]]) -> Feeds:
    """optkit's side: load the output arrays the worker listed (files under ``scratch/io``), each
    checked by :func:`open_worker_file` and read with ``allow_pickle=False``; then removed.

    Raises:
        SourceModelError: a bad name, a file that is not a plain ``.npy`` of numbers or strings.
    """
    feeds: Feeds = {}
    for entry in names:
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
            raise SourceModelError("the source model's worker sent a malformed answer", "a hostile or broken model")
        name, file = entry
        if Path(file).name != file or not file.endswith(".npy"):
            raise SourceModelError(
                f"the source model's worker named a bad array file: {file!r}", "a hostile or broken model"
            )
        fd = open_worker_file(scratch, f"io/{file}", remove=True)
        with os.fdopen(fd, "rb") as handle:
            try:
                feeds[name] = np.load(handle, allow_pickle=False)
            except (ValueError, EOFError, OSError) as exc:
                raise SourceModelError(
                    f"the source model's output {name!r} is not a readable array ({exc})", "a hostile or broken model"
                ) from exc
    return feeds


def copy_worker_file(scratch: Path, relative: str, destination: Path) -> None:
    """Copy the regular file ``scratch/relative`` (checked by :func:`open_worker_file`) into a new
    file ``destination`` of optkit's own, then remove the worker's copy.

    Raises:
        SourceModelError: as :func:`open_worker_file`.
    """
    fd = open_worker_file(scratch, relative, max_bytes=1 << 62, remove=True)
    with os.fdopen(fd, "rb") as source, open(destination, "xb") as target:
        while chunk := source.read(1 << 20):
            target.write(chunk)
