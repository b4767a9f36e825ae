"""``manifest.json``: what was done to make an artifact, with hashes, versions and every gate.

The manifest lists the sha256 of every other file in the artifact folder (it cannot hash itself),
of the source model and of the validation data, plus the resolved recipe and its hash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from optkit.hashing import sha256_file

SCHEMA_VERSION = 1


class FileEntry(BaseModel):
    """One file of the artifact: sha256 (hex) and size in bytes."""

    sha256: str
    bytes: int


class Manifest(BaseModel):
    """The artifact manifest (``manifest.json``)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    approved: bool
    strict: bool
    recipe: dict[str, Any]
    source: dict[str, Any]
    artifact: dict[str, Any]
    files: dict[str, FileEntry]
    environment: dict[str, Any]
    data: dict[str, Any]
    steps: list[dict[str, Any]]
    accuracy: dict[str, Any]
    speed: dict[str, Any] | None
    gates: list[dict[str, Any]]
    warnings: list[str]
    search: list[dict[str, Any]] = []
    #: ``"real-data"`` or ``"random-inputs"`` (validated on generated inputs: --strict rejects it)
    evidence: str = "real-data"
    #: how the source model was confined: ``status`` (``confined`` / ``unavailable`` / ``off``), the
    #: Landlock ABI, network blocking and the paths it could read and write
    sandbox: dict[str, Any] = {}
    digest: str = ""


DIGEST_PLACEHOLDER = "0" * 64


def seal(manifest: Manifest) -> str:
    """The manifest's JSON text with ``digest`` = sha256 of that exact text written with a
    placeholder digest, so that any changed byte of ``manifest.json`` (whitespace included) is
    detected by :func:`digest_ok`."""
    text = manifest.model_copy(update={"digest": DIGEST_PLACEHOLDER}).model_dump_json(indent=2) + "\n"
    return text.replace(DIGEST_PLACEHOLDER, hashlib.sha256(text.encode()).hexdigest(), 1)


def digest_ok(text: str, digest: str) -> bool:
    """True when ``text`` (a manifest.json's content) is exactly what :func:`seal` wrote."""
    if len(digest) != 64 or digest not in text:
        return False
    return hashlib.sha256(text.replace(digest, DIGEST_PLACEHOLDER, 1).encode()).hexdigest() == digest


def file_entries(folder: Path, names: list[str]) -> dict[str, FileEntry]:
    """Hash the named files of ``folder``."""
    return {n: FileEntry(sha256=sha256_file(folder / n), bytes=(folder / n).stat().st_size) for n in sorted(names)}
