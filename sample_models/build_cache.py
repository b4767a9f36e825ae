"""Build cache for the sample scripts: a ``build-stamp.json`` holding the building script's sha256
(and, for builders that pass one, a cache key of script hashes, package versions, data hashes and
settings), and an atomic publish (build into ``<out>.tmp``, then rename), so a half-built folder
never looks complete."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path


def script_sha256(script: Path) -> str:
    """sha256 (hex) of the building script's bytes."""
    return hashlib.sha256(script.read_bytes()).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(
    scripts: Iterable[Path], packages: Iterable[str], data: Iterable[Path], settings: Mapping[str, object]
) -> dict:
    """What a build depends on, as JSON-ready values: ``{"scripts": {file name: sha256}, "packages":
    {distribution: version or None when not installed}, "data": {file name: sha256}, "settings": ...}``.
    Package versions come from installed metadata (nothing is imported)."""

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "scripts": {path.name: file_sha256(path) for path in scripts},
        "packages": {name: version(name) for name in packages},
        "data": {path.name: file_sha256(path) for path in data},
        "settings": dict(settings),
    }


def up_to_date(out: Path, script: Path, key: dict | None = None, outputs: Iterable[str] = ()) -> bool:
    """True when ``out/build-stamp.json`` was written by this exact script, with this cache ``key``
    (when given; compared to the stamp's ``cache_key``), and every path of ``outputs`` (relative to
    ``out``) is a file. A missing or unreadable stamp is not up to date."""
    try:
        stamp = json.loads((out / "build-stamp.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("script_sha256") != script_sha256(script):
        return False
    if key is not None and stamp.get("cache_key") != key:
        return False
    return all((out / rel).is_file() for rel in outputs)


def fresh_tmp(out: Path) -> Path:
    """An empty ``<out>.tmp`` folder to build into."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, out: Path, stamp: dict) -> None:
    """Write ``build-stamp.json`` into ``tmp`` and move it to ``out`` (replacing an old build)."""
    (tmp / "build-stamp.json").write_text(json.dumps(stamp, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
