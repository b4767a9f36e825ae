"""Quiet a chatty library's logger for one call, and leave the caller's logging as it was.

ONNX Runtime's quantizer logs advice through the *root* logger (``logging.info(...)``), and its
transformer optimizer through ``onnxruntime.transformers``. Library code must not change the user's
logging for good, so :func:`quiet_logs` raises a logger's level only for the block and restores it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_logs(name: str | None = None, level: int = logging.ERROR) -> Iterator[None]:
    """Within the block, drop records below ``level`` from logger ``name`` (None: the root logger).

    The logger's own level is raised to ``level`` (never lowered: a logger already quieter stays
    so) and restored on exit, also when the block raises. For the root logger without handlers, a
    stand-in for Python's last-resort handler (stderr, WARNING and above) is attached for the block,
    so that a module-level ``logging.info()`` in the library cannot call ``logging.basicConfig()``
    and leave a handler on the user's root logger; it is removed on exit.

    Args:
        name: the logger's name, e.g. ``"onnxruntime.transformers"``; None for the root logger.
        level: the least severe level let through during the block.
    """
    logger = logging.getLogger(name)
    saved = logger.level
    stand_in = None
    if name is None and not logger.handlers and logging.lastResort is not None:
        stand_in = logging.lastResort
        logger.addHandler(stand_in)
    if saved < level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(saved)
        if stand_in is not None:
            logger.removeHandler(stand_in)
