"""Ctrl-C (and SIGTERM, SIGHUP) that cannot be lost.

Python turns SIGINT into ``KeyboardInterrupt`` at the next bytecode, but native code that checks
for signals itself (PyTorch's exporter, ONNX Runtime, the quantizer) can consume that exception and
carry on, which left a run going after Ctrl-C in about one of several tries. The CLI installs
:func:`install`: the handler records the request as well as raising, and :func:`check`, called at
every pipeline step, search candidate and timed call, raises again until the run has stopped.

SIGTERM (what CI runners, ``timeout`` and ``docker stop`` send) and SIGHUP (a closed terminal or SSH
session) are handled the same way, so that temporary and staging folders are removed on the way
out; they raise :class:`Interrupted`, a ``KeyboardInterrupt`` that carries the signal, and the CLI
exits with ``128 + signal number`` (130 SIGINT, 143 SIGTERM, 129 SIGHUP), as a shell reports it.
"""

from __future__ import annotations

import signal
import threading

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_requested = threading.Event()
_signal = [signal.SIGINT]


class Interrupted(KeyboardInterrupt):
    """A stop request by signal ``signum`` (a ``KeyboardInterrupt``, so every clean-up that
    handles Ctrl-C handles it too).

    Attributes:
        signum: the signal number, e.g. ``signal.SIGTERM``.
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _handler(signum, frame) -> None:
    if not _requested.is_set():  # the first signal names the stop; a second one stops it again
        _signal[0] = signum
    _requested.set()
    raise Interrupted(_signal[0])


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP through the recording handler (main thread only; call once
    per process). SIGHUP is left alone when it is ignored (``nohup``)."""
    _requested.clear()
    _signal[0] = signal.SIGINT
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
            continue
        signal.signal(signum, _handler)


def check() -> None:
    """Raise :class:`Interrupted` if a handled signal arrived since :func:`install`."""
    if _requested.is_set():
        raise Interrupted(_signal[0])


def exit_code(exc: BaseException) -> int:
    """``128 + signal number`` for an :class:`Interrupted` (or a plain ``KeyboardInterrupt``: 130)."""
    return 128 + getattr(exc, "signum", signal.SIGINT)
