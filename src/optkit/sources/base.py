"""The source model: the user's model in its own framework, loaded once and run as the reference."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from optkit.io_spec import ModelInfo

if TYPE_CHECKING:
    from optkit.runners.base import Runner


class SourceModel(ABC):
    """A loaded source model.

    Attributes:
        framework: registry key of the framework, e.g. ``"torch"``.
        kind: the on-disk format, e.g. ``"torchscript"``, ``"torch.export"``, ``"hf"``.
        path: the file or folder the user gave.
        info: names, task, config (see :class:`~optkit.io_spec.ModelInfo`).
    """

    framework: str = ""
    kind: str = ""

    def __init__(self, path: Path, info: ModelInfo) -> None:
        self.path = path
        self.info = info

    @abstractmethod
    def runner(self, threads: int, device: str = "cpu") -> "Runner":
        """A runner that executes this model in its own framework (the reference)."""

    @abstractmethod
    def framework_versions(self) -> dict[str, str]:
        """Versions of the framework packages involved, for the manifest."""

    def sha256(self) -> str:
        """sha256 (hex) of the source file, or of every file in a source folder (sorted by path)."""
        return hash_path(self.path)


def hash_path(path: Path) -> str:
    """sha256 of a file, or of a folder's files: each relative path and content, in sorted order."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
