"""Ctrl-C that cannot be lost.

Python turns SIGINT into ``KeyboardInterrupt`` at the next bytecode, but native code that checks
for signals itself (PyTorch's exporter, ONNX Runtime, the quantizer) can consume that exception and
carry on, which left a run going after Ctrl-C in about one of several tries. The CLI installs
:func:`install`: the handler records the request as well as raising, and :func:`check`, called at
every pipeline step, search candidate and timed call, raises ``KeyboardInterrupt`` again until the
run has stopped.
"""

from __future__ import annotations

import signal
import threading

_requested = threading.Event()


def _handler(signum, frame) -> None:
    _requested.set()
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through the recording handler (main thread only; call once per process)."""
    _requested.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since :func:`install`."""
    if _requested.is_set():
        raise KeyboardInterrupt
