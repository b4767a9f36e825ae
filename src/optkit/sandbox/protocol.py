"""The wire between optkit and its source-model worker: one JSON object per line on a pipe, and
arrays as ``.npy`` files in the worker's scratch folder.

Nothing that crosses it can carry code: messages are plain JSON, and arrays are read with
``numpy.load(allow_pickle=False)`` (object arrays are refused), so a hostile model can at worst
send wrong numbers, never objects that run when unpickled.

This module imports only the standard library (the worker uses it before it is confined, and
Landlock must be applied before numpy starts its threads); arrays are in :mod:`optkit.sandbox.arrays`.

A request is ``{"op": NAME, ...arguments}``; the answer is ``{"ok": true, ...values}`` or
``{"ok": false, "error": {"type": ..., "kind": ..., "message": ..., "hint": ...}}``.
"""

from __future__ import annotations

import json
from typing import IO, Any

from optkit import errors

#: OptkitError kinds a worker may raise on the parent's side (by class name); anything else a
#: worker reports becomes a :class:`WorkerCallError`
RAISABLE = {
    cls.__name__: cls
    for cls in (
        errors.RecipeError,
        errors.SourceModelError,
        errors.DataError,
        errors.DependencyError,
        errors.ExportError,
        errors.PassError,
        errors.OutputError,
        errors.UnsafeModelError,
        errors.SandboxUnavailable,
    )
}


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
