"""``session.json``: the artifact's serving configuration (ONNX Runtime session settings).

Written by the pipeline when the recipe ran the ``tune-session`` pass; the same record as the
manifest's ``serving`` section. Like every artifact file it is listed with its sha256 in the
manifest and signed by ``model.sig``; :func:`check_serving` adds what a hash cannot say: the file
parses as a strict :class:`~optkit.records.session.ServingConfig` (no unknown key, bounded
numbers), agrees with the manifest, and stays within its own thread budget.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from optkit.records.manifest import Manifest
from optkit.records.session import SESSION_FILE, ServingConfig

#: the largest ``session.json`` read back (a real one is a few kB)
MAX_BYTES = 1_000_000


def write_serving(folder: Path, serving: ServingConfig) -> str:
    """Write ``folder/session.json`` (indented JSON of ``serving``); returns its name."""
    (folder / SESSION_FILE).write_text(serving.model_dump_json(indent=2) + "\n")
    return SESSION_FILE


def check_serving(folder: Path, manifest: Manifest) -> tuple[ServingConfig | None, list[str]]:
    """The serving configuration of an artifact folder and the problems with it.

    Returns:
        ``(config, problems)``: ``config`` is the manifest's ``serving`` when ``session.json``
        agrees with it, else None; ``problems`` one line each (an empty list when the artifact
        has no serving configuration). A missing, extra, symlinked or re-hashed ``session.json``
        is reported by the file check of :func:`~optkit.artifact.verify.verify_artifact`, not here.
    """
    expected = manifest.serving
    path = folder / SESSION_FILE
    if expected is None or path.is_symlink() or not path.is_file():
        return None, []
    if path.stat().st_size > MAX_BYTES:
        return None, [f"{SESSION_FILE} is larger than {MAX_BYTES} bytes: not a serving configuration"]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            found = ServingConfig.model_validate_json(handle.read(MAX_BYTES + 1))
    except (OSError, ValidationError, UnicodeDecodeError) as exc:
        first = (str(exc).splitlines() or [""])[0][:160]
        return None, [f"{SESSION_FILE} is not a valid serving configuration ({first})"]
    problems = []
    if found != expected:
        problems.append(f"{SESSION_FILE} disagrees with the manifest's serving configuration")
    used = found.settings.threads_used
    if used > found.threads_budget:
        problems.append(f"{SESSION_FILE} asks for {used} threads, more than its thread budget ({found.threads_budget})")
    return (expected if not problems else None), problems


__all__ = ["MAX_BYTES", "SESSION_FILE", "check_serving", "write_serving"]
