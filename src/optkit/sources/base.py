"""The source model: the user's model in its own framework, loaded once and run as the reference."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from optkit.hashing import hash_path
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
    #: ``{label in the manifest: importable module}``: the framework, then optional companions
    #: (exporters, model libraries) that are left out when not installed
    version_modules: dict[str, str] = {}

    def __init__(self, path: Path, info: ModelInfo) -> None:
        self.path = path
        self.info = info

    @abstractmethod
    def runner(self, threads: int, device: str = "cpu") -> Runner:
        """A runner that executes this model in its own framework (the reference)."""

    def device_missing(self, device: str) -> str | None:
        """Why this framework cannot run the model on ``device`` here, or None (it can, or the
        framework ignores the device). Frameworks with device support override it."""
        return None

    def traits(self) -> dict[str, object]:
        """Facts about the loaded model that explain an export mismatch (JSON values), read by
        :func:`~optkit.validation.export_check.likely_causes`: ``training`` (modules in training
        mode), ``dropout`` (dropout layers or ops that are active), ``attention`` (the reference's
        attention implementation, when it is not the exported one's), ``float16`` (half-precision
        weights). Empty when the framework tells nothing; frameworks override it."""
        return {}

    def framework_versions(self) -> dict[str, str]:
        """Versions of the framework packages involved, for the manifest: ``__version__`` of each
        module in :attr:`version_modules` that can be imported."""
        versions = {}
        for label, module in self.version_modules.items():
            try:
                versions[label] = importlib.import_module(module).__version__
            except ImportError:
                continue
        return versions

    def sha256(self) -> str:
        """sha256 (hex) of the source file, or of every file in a source folder (sorted by path)."""
        return hash_path(self.path)
