"""sha256 of files and folders, for manifests, source models and validation data."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB chunks (same as ``sha256sum``)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_path(path: Path) -> str:
    """:func:`sha256_file` for a file; for a folder, sha256 over each file's relative path and
    content hash, in sorted order."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + sha256_file(file).encode())
    return digest.hexdigest()
