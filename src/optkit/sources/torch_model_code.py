"""A PyTorch state dict plus the user's own model code (``--model-code module:factory``): what most
training scripts save (``torch.save(model.state_dict(), "model.pt")``).

``module`` is a ``.py`` file or a dotted module name found relative to the current folder;
``factory`` is a function (or class) in it, called with no arguments, that returns the
``nn.Module``. The state dict (``.pt``/``.pth``/``.bin`` written by ``torch.save``, or
``.safetensors``) is loaded into it with ``strict=True``.

Trust: the model code is the user's own (naming it trusts it), so it is imported and run, inside
the confined worker, which may read exactly the code's file (a standalone module) or its top-level
package folder (a module inside a package). The state dict file is not trusted: it is loaded with
``torch.load(weights_only=True)`` (tensors and containers only, no code), always.

:func:`resolve_model_code` runs in optkit's process (no import of the user's code, no torch), and
:func:`build_module` in the worker.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optkit.errors import SourceModelError
from optkit.hashing import sha256_file

HINT = (
    "pass --model-code path/to/model.py:build_model (or package.module:build_model), a function returning the nn.Module"
)


@dataclass(frozen=True)
class ModelCode:
    """The user's model code, resolved to files.

    Attributes:
        file: the ``.py`` file that holds the factory (absolute, resolved).
        module: its import name (``pkg.models`` inside a package, or a private name for a standalone file).
        package_root: the top-level package folder when ``file`` lies in a package (folders with
            ``__init__.py``), else None.
        factory: the attribute of the module to call.
        sha256: hex digest of ``file``, for the manifest.
    """

    file: Path
    module: str
    package_root: Path | None
    factory: str
    sha256: str

    @property
    def read_paths(self) -> list[Path]:
        """What the worker must be allowed to read: the package folder, or the file alone."""
        return [self.package_root or self.file]

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready, for the worker's request and the manifest."""
        return {
            "file": str(self.file),
            "module": self.module,
            "package_root": str(self.package_root) if self.package_root else None,
            "factory": self.factory,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCode:
        """The inverse of :meth:`to_dict`."""
        root = data.get("package_root")
        return cls(
            Path(data["file"]), str(data["module"]), Path(root) if root else None, str(data["factory"]), data["sha256"]
        )


def resolve_model_code(value: str, cwd: Path | None = None) -> ModelCode:
    """Parse ``module:factory`` and find the module's file (without importing it).

    Args:
        value: ``path/to/file.py:factory`` or ``dotted.module:factory``.
        cwd: the folder dotted modules and relative paths are found from (default: the current one).

    Raises:
        SourceModelError: no ``:factory``, or the module file does not exist.
    """
    base = cwd or Path.cwd()
    module, sep, factory = value.rpartition(":")
    if not sep or not module or not factory.isidentifier():
        raise SourceModelError(f"--model-code expects module:factory, got {value!r}", HINT)
    if module.endswith(".py") or "/" in module or "\\" in module:
        file = (base / module).resolve()
    else:
        parts = module.split(".")
        if not all(p.isidentifier() for p in parts):
            raise SourceModelError(f"--model-code module {module!r} is neither a .py file nor a dotted name", HINT)
        stem = base.joinpath(*parts)
        file = (stem.with_suffix(".py") if stem.with_suffix(".py").is_file() else stem / "__init__.py").resolve()
    if not file.is_file() or file.suffix != ".py":
        raise SourceModelError(f"--model-code: no Python file {file} for {module!r}", HINT)
    folders = []
    folder = file.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        folders.append(folder.name)
        folder = folder.parent
    package_root = folder / folders[-1] if folders else None
    if folders:
        tail = [] if file.name == "__init__.py" else [file.stem]
        name = ".".join([*reversed(folders), *tail])
    else:
        name = f"optkit_model_code_{file.stem}"
    return ModelCode(file, name, package_root, factory, sha256_file(file))


def _import(code: ModelCode) -> Any:
    """Import the model code from its file (in the worker): the top-level package from its folder
    (its submodules are found through the package's ``__path__``, which lies in the granted
    folder), or the standalone file as a module of its own."""
    if code.package_root is None:
        spec = importlib.util.spec_from_file_location(code.module, code.file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[code.module] = module
        spec.loader.exec_module(module)
        return module
    top = code.module.split(".")[0]
    if top not in sys.modules:
        init = code.package_root / "__init__.py"
        spec = importlib.util.spec_from_file_location(top, init, submodule_search_locations=[str(code.package_root)])
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[top] = package
        spec.loader.exec_module(package)
    return importlib.import_module(code.module)


def build_module(code: ModelCode, torch: Any) -> Any:
    """Import the model code and call its factory (in the worker).

    Returns:
        the ``nn.Module`` the factory built (weights not loaded yet).

    Raises:
        SourceModelError: the module fails to import, has no such factory, the factory raises, or it
            returns something other than an ``nn.Module``.
    """
    where = f"{code.file.name}:{code.factory}"
    try:
        module = _import(code)
    except Exception as exc:  # the user's code may raise anything while importing
        first = (str(exc).splitlines() or [""])[0][:200]
        raise SourceModelError(
            f"--model-code {code.file} failed to import: {type(exc).__name__}: {first}",
            "fix the model code; it runs confined, reading only its own file or package",
        ) from exc
    factory = getattr(module, code.factory, None)
    if not callable(factory):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:8]
        raise SourceModelError(
            f"--model-code: {code.file.name} has no function '{code.factory}'", f"it defines {found}"
        )
    try:
        model = factory()
    except Exception as exc:
        raise SourceModelError(
            f"--model-code {where} raised {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}",
            "the factory is called with no arguments and must return the nn.Module",
        ) from exc
    if not isinstance(model, torch.nn.Module):
        raise SourceModelError(
            f"--model-code {where} returned a {type(model).__name__}, not a torch.nn.Module",
            "return the model (an nn.Module instance) from the factory",
        )
    return model


def read_state_dict(path: Path, torch: Any) -> dict[str, Any]:
    """The tensors of a state dict file: ``.safetensors`` (safetensors), else ``torch.load`` with
    ``weights_only=True`` (no code from the file runs); a ``{"state_dict": {...}}`` or
    ``{"model": {...}}`` checkpoint is unwrapped.

    Raises:
        SourceModelError: unreadable file, or no mapping of names to tensors in it.
    """
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError (code refused), zip errors, safetensors errors
        raise SourceModelError(
            f"cannot read the state dict {path}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}",
            "save it with torch.save(model.state_dict(), path) or safetensors; optkit loads it with weights_only=True",
        ) from exc
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), dict) and not any(torch.is_tensor(v) for v in state.values()):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise SourceModelError(
            f"{path} holds a {type(state).__name__}, not a state dict (names → tensors)",
            "save model.state_dict(), or pass the whole model as TorchScript / torch.export (.pt2)",
        )
    return state


def load_weights(model: Any, state: dict[str, Any], path: Path) -> None:
    """``model.load_state_dict(state, strict=True)``, with missing or unexpected keys named.

    Raises:
        SourceModelError: keys differ (a few of each are listed) or a tensor's shape differs.
    """
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''} ({len(missing)})")
        if unexpected:
            parts.append(f"unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''} ({len(unexpected)})")
        raise SourceModelError(
            f"the state dict {path.name} does not fit the --model-code module: {'; '.join(parts)}",
            "the factory must build the same architecture the weights were saved from",
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # size mismatch
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise SourceModelError(
            f"the state dict {path.name} does not fit the --model-code module: {(lines[1:] or lines or [''])[0][:240]}",
            "the factory must build the same architecture (and sizes) the weights were saved from",
        ) from exc


def forward_names(model: Any) -> list[str]:
    """The names of ``model.forward``'s positional tensor arguments (``*args``/``**kwargs`` left out)."""
    params = inspect.signature(model.forward).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds and p.name != "self"]
