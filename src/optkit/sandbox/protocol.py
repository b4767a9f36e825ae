"""The wire between optkit and its source-model worker: one JSON object per line on a pipe, and
arrays as ``.npy`` files in the worker's scratch folder.

Nothing that crosses it can carry code: messages are plain JSON, and arrays are read with
``numpy.load(allow_pickle=False)`` (object arrays are refused), so a hostile model can at worst
send wrong numbers, never objects that run when unpickled.

A request is ``{"op": NAME, ...arguments}``; the answer is ``{"ok": true, ...values}`` or
``{"ok": false, "error": {"type": ..., "kind": ..., "message": ..., "hint": ...}}``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import IO, Any

import numpy as np

from optkit import errors

Feeds = dict[str, np.ndarray]

#: OptkitError kinds a worker may raise on the parent's side (by class name); anything else a
#: worker reports becomes a :class:`WorkerCallError`
RAISABLE = {cls.__name__: cls for cls in (
    errors.RecipeError, errors.SourceModelError, errors.DataError, errors.DependencyError, errors.ExportError,
    errors.PassError, errors.OutputError)}
for _name in ("UnsafeModelError", "SandboxUnavailable"):
    if hasattr(errors, _name):
        RAISABLE[_name] = getattr(errors, _name)


class WorkerCallError(Exception):
    """A request failed inside the worker with an exception that is not an OptkitError (e.g. the
    framework rejected the inputs).

    Attributes:
        type_name: the exception's class name in the worker (e.g. ``"RuntimeError"``).
        message: its first line (at most 300 characters).
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


def send(stream: IO[str], message: dict[str, Any]) -> None:
    """Write one message (a JSON object) and a newline, then flush."""
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def receive(stream: IO[str]) -> dict[str, Any] | None:
    """Read one message; ``None`` at end of stream (the other side closed its end or died).

    Raises:
        ValueError: the line is not a JSON object (a protocol error).
    """
    line = stream.readline()
    if not line:
        return None
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("protocol message is not a JSON object")
    return message


def error_reply(exc: BaseException) -> dict[str, Any]:
    """The failure answer for an exception raised while serving a request."""
    if isinstance(exc, errors.OptkitError):
        return {"ok": False, "error": {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}}
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return {"ok": False, "error": {"type": type(exc).__name__, "message": first, "hint": None}}


def raise_error(error: dict[str, Any]) -> None:
    """Raise the parent-side exception for a worker's failure answer: the same OptkitError kind
    (when it is one of :data:`RAISABLE`), else :class:`WorkerCallError`."""
    cls = RAISABLE.get(str(error.get("type")))
    message, hint = str(error.get("message", "")), error.get("hint")
    if cls is not None:
        raise cls(message, str(hint) if hint else None)
    raise WorkerCallError(str(error.get("type", "Exception")), message)


class ArrayFolder:
    """Arrays as ``.npy`` files in one folder, named ``<prefix>-<counter>.npy`` (never by a tensor
    name, which could hold ``/`` or ``..``); each side of the wire writes with its own prefix."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder, self.prefix = folder, prefix
        folder.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()

    def write(self, feeds: Feeds) -> list[list[str]]:
        """Save each array; returns ``[[tensor name, file name], ...]`` in order."""
        names = []
        for name, array in feeds.items():
            file = f"{self.prefix}-{next(self._counter)}.npy"
            np.save(self.folder / file, np.ascontiguousarray(array), allow_pickle=False)
            names.append([name, file])
        return names

    def read(self, names: list[list[str]], delete: bool = True) -> Feeds:
        """Load the arrays :meth:`write` listed (``allow_pickle=False``), in order; the files are
        removed afterwards unless ``delete`` is False.

        Raises:
            ValueError: a file name that leaves the folder, or an object array.
        """
        feeds: Feeds = {}
        for name, file in names:
            if Path(file).name != file or not file.endswith(".npy"):
                raise ValueError(f"bad array file name in protocol message: {file!r}")
            path = self.folder / file
            feeds[str(name)] = np.load(path, allow_pickle=False)
            if delete:
                path.unlink(missing_ok=True)
        return feeds
