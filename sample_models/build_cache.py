"""Build cache for the sample scripts: a ``build-stamp.json`` holding the building script's sha256,
and an atomic publish (build into ``<out>.tmp``, then rename), so a half-built folder never looks
complete."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path


def script_sha256(script: Path) -> str:
    """sha256 (hex) of the building script's bytes."""
    return hashlib.sha256(script.read_bytes()).hexdigest()


def up_to_date(out: Path, script: Path) -> bool:
    """True when ``out/build-stamp.json`` was written by this exact script."""
    stamp = out / "build-stamp.json"
    return stamp.is_file() and json.loads(stamp.read_text()).get("script_sha256") == script_sha256(script)


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
