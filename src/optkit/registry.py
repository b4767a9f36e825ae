"""The one registry: source frameworks and passes, by name, imported lazily (a run imports only the
framework it needs; importing TensorFlow and PaddlePaddle in one process can crash)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optkit.errors import SourceModelError
from optkit.pass_configs import PASS_RUNNERS


@dataclass(frozen=True)
class Framework:
    """A source framework: how to recognise, load and export its models.

    Attributes:
        name: registry key (``--framework``).
        extra: the optkit extra that installs it (``pip install 'optkit[<extra>]'``).
        claims: ``(path) -> bool`` without importing the framework.
        loader: ``"module:function"`` loading a SourceModel.
        exporter: ``"module:function"`` exporting it to ONNX.
        hasher: ``"module:function"`` giving the source's sha256 (hex) from its path without loading
            it (``optkit verify --data`` checks it before loading anything).
    """

    name: str
    extra: str
    claims: Callable[[Any], bool]
    loader: str
    exporter: str
    hasher: str = "optkit.hashing:hash_path"


def _claims_onnx(path: Any) -> bool:
    """By content (any extension); a ``.onnx`` file that is no zip/pickle too, so that a truncated or
    damaged one gets the ONNX loader's error rather than 'cannot tell which framework'."""
    from optkit.sources.onnx_format import content_kind, looks_like_onnx, read_head

    head = read_head(path)
    if looks_like_onnx(head):
        return True
    return path.is_file() and path.suffix.lower() == ".onnx" and content_kind(head) not in ("a zip archive", "a pickle")


def _claims_torch(path: Any) -> bool:
    """By extension, or by content: a zip archive laid out as TorchScript / torch.export / torch.save."""
    if (path.is_dir() and (path / "config.json").is_file()) or path.suffix.lower() in (
        ".pt",
        ".pt2",
        ".pth",
        ".ts",
        ".bin",
        ".safetensors",
    ):
        return True
    from optkit.sources.torch_format import is_torch_archive

    return path.is_file() and is_torch_archive(path)


def _claims_sklearn(path: Any) -> bool:
    return path.is_file() and path.suffix.lower() in (".skops", ".joblib", ".pkl", ".pickle")


def _claims_tf(path: Any) -> bool:
    return path.suffix.lower() == ".keras" or (path.is_dir() and (path / "saved_model.pb").is_file())


def _claims_paddle(path: Any) -> bool:
    if path.is_dir():
        return any(p.suffix == ".pdiparams" for p in path.iterdir())
    return path.suffix == ".pdmodel" or (path.suffix == ".json" and path.with_suffix(".pdiparams").exists())


# Checked in this order: content-based claims (ONNX, then PyTorch archives) come first, so that a
# file whose extension lies (an ONNX model named .pt, a TorchScript named .onnx) is still recognised.
FRAMEWORKS: dict[str, Framework] = {
    "onnx": Framework(
        "onnx",
        "onnx",
        _claims_onnx,
        "optkit.sources.onnx_source:load",
        "optkit.exporters.onnx_exporter:export",
        "optkit.sources.onnx_source:source_sha256",
    ),
    "torch": Framework(
        "torch", "torch", _claims_torch, "optkit.sources.torch_source:load", "optkit.exporters.torch_exporter:export"
    ),
    "tensorflow": Framework(
        "tensorflow", "tf", _claims_tf, "optkit.sources.tf_source:load", "optkit.exporters.tf_exporter:export"
    ),
    "paddle": Framework(
        "paddle",
        "paddle",
        _claims_paddle,
        "optkit.sources.paddle_source:load",
        "optkit.exporters.paddle_exporter:export",
        "optkit.sources.paddle_source:source_sha256",
    ),
    "sklearn": Framework(
        "sklearn",
        "sklearn",
        _claims_sklearn,
        "optkit.sources.sklearn_source:load",
        "optkit.exporters.sklearn_exporter:export",
    ),
}

# Pass name → "optkit.passes.<module>:run", derived from the pass catalog (each config class names its
# pass; the catalog imports no pass code, onnx or onnxruntime).
PASSES: dict[str, str] = dict(PASS_RUNNERS)


def resolve(target: str) -> Callable[..., Any]:
    """Import ``"module:function"`` and return the function."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def detect_framework(path: Any, requested: str = "auto") -> Framework:
    """The framework for ``path`` (``requested`` overrides detection).

    Raises:
        SourceModelError: ``path`` is missing or not a regular file or folder (a FIFO, device or
            socket is refused without being opened), no framework claims the file, or an unknown
            framework name.
    """
    from optkit.paths import require_regular

    path = require_regular(path, "source model", SourceModelError, allow_dir=True)
    if requested != "auto":
        if requested not in FRAMEWORKS:
            raise SourceModelError(f"unknown framework '{requested}'", f"valid: {', '.join(FRAMEWORKS)}")
        return FRAMEWORKS[requested]
    for framework in FRAMEWORKS.values():
        if framework.claims(path):
            return framework
    from optkit.sources.onnx_format import content_kind, read_head

    content = "a folder" if path.is_dir() else content_kind(read_head(path))
    raise SourceModelError(
        f"cannot tell which framework {path} belongs to (extension '{path.suffix}', content: {content})",
        f"pass a supported model ({', '.join(FRAMEWORKS)}), or name its framework with --framework",
    )
