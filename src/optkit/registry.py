"""The one registry: source frameworks and passes, by name, imported lazily (a run imports only the
framework it needs; importing TensorFlow and PaddlePaddle in one process can crash)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from optkit.errors import SourceModelError


@dataclass(frozen=True)
class Framework:
    """A source framework: how to recognise, load and export its models.

    Attributes:
        name: registry key (``--framework``).
        extra: the optkit extra that installs it (``pip install 'optkit[<extra>]'``).
        claims: ``(path) -> bool`` without importing the framework.
        loader: ``"module:function"`` loading a SourceModel.
        exporter: ``"module:function"`` exporting it to ONNX.
    """

    name: str
    extra: str
    claims: Callable[[Any], bool]
    loader: str
    exporter: str


def _claims_torch(path: Any) -> bool:
    return (path.is_dir() and (path / "config.json").is_file()) or path.suffix.lower() in (
        ".pt", ".pt2", ".pth", ".ts", ".bin")


def _claims_sklearn(path: Any) -> bool:
    return path.is_file() and path.suffix.lower() in (".skops", ".joblib", ".pkl", ".pickle")


def _claims_tf(path: Any) -> bool:
    return path.suffix.lower() == ".keras" or (path.is_dir() and (path / "saved_model.pb").is_file())


def _claims_paddle(path: Any) -> bool:
    if path.is_dir():
        return any(p.suffix == ".pdiparams" for p in path.iterdir())
    return path.suffix == ".pdmodel" or (path.suffix == ".json" and path.with_suffix(".pdiparams").exists())


FRAMEWORKS: dict[str, Framework] = {
    "torch": Framework("torch", "torch", _claims_torch, "optkit.sources.torch_source:load",
                       "optkit.exporters.torch_exporter:export"),
    "tensorflow": Framework("tensorflow", "tf", _claims_tf, "optkit.sources.tf_source:load",
                            "optkit.exporters.tf_exporter:export"),
    "paddle": Framework("paddle", "paddle", _claims_paddle, "optkit.sources.paddle_source:load",
                        "optkit.exporters.paddle_exporter:export"),
    "sklearn": Framework("sklearn", "sklearn", _claims_sklearn, "optkit.sources.sklearn_source:load",
                         "optkit.exporters.sklearn_exporter:export"),
}

PASSES: dict[str, str] = {
    "simplify": "optkit.passes.simplify:run",
    "fuse": "optkit.passes.fuse:run",
    "quantize-dynamic": "optkit.passes.quantize_dynamic:run",
    "quantize-static": "optkit.passes.quantize_static:run",
    "fp16": "optkit.passes.fp16:run",
}


def resolve(target: str) -> Callable[..., Any]:
    """Import ``"module:function"`` and return the function."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def detect_framework(path: Any, requested: str = "auto") -> Framework:
    """The framework for ``path`` (``requested`` overrides detection).

    Raises:
        SourceModelError: no framework claims the file, or an unknown framework name.
    """
    if requested != "auto":
        if requested not in FRAMEWORKS:
            raise SourceModelError(f"unknown framework '{requested}'", f"valid: {', '.join(FRAMEWORKS)}")
        return FRAMEWORKS[requested]
    for framework in FRAMEWORKS.values():
        if framework.claims(path):
            return framework
    raise SourceModelError(
        f"cannot tell which framework {path} belongs to (extension '{path.suffix}')",
        f"pass a supported model ({', '.join(FRAMEWORKS)}), or name its framework with --framework",
    )
