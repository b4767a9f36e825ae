"""scikit-learn ``.skops`` files: which of a file's types to trust.

``skops.io.get_untrusted_types`` lists the types a file needs beyond skops' default trusted set
(https://skops.readthedocs.io/en/stable/persistence.html); that default set already covers numpy
arrays and dtypes, builtin containers and numpy ufuncs such as ``numpy.log1p`` (pure element-wise
math, so a ``FunctionTransformer(numpy.log1p)`` loads). Of the rest, optkit trusts exactly the
**classes** defined in scikit-learn (the name starts with ``sklearn.``, resolves to a class, and that
class's ``__module__`` is in ``sklearn``) — e.g. ``sklearn.tree._tree.Tree`` or the
HistGradientBoosting ``TreePredictor``, which skops leaves off its default list. **Functions** are
never trusted, from scikit-learn or elsewhere: ``sklearn.datasets.dump_svmlight_file`` writes any
file, and skops itself lists such functions as untrusted.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from optkit.errors import SourceModelError, missing_dependency
from optkit.scan.report import TRUST_MODEL_CODE, Finding

# --trust-model-code alone skips the scan, but the loader still passes only trusted_skops_types to
# skops.io.load; --trust-pickle makes it trust every type the file needs.
SKOPS_HINT = (
    "optkit loads only scikit-learn classes from .skops files; re-save the model without it, or pass "
    f"{TRUST_MODEL_CODE} --trust-pickle to load it anyway (dangerous: it then runs whatever it names)"
)


def _resolve(name: str) -> object | None:
    """The object a dotted ``sklearn.`` name names (longest importable module, then attributes)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def is_sklearn_class(name: str) -> bool:
    """True when ``name`` (``"module.Qualname"``) is a class defined in scikit-learn."""
    if not name.startswith("sklearn."):
        return False
    obj = _resolve(name)
    return inspect.isclass(obj) and (obj.__module__ or "").split(".")[0] == "sklearn"


def untrusted_types(path: Path) -> list[str]:
    """``skops.io.get_untrusted_types(file=path)``.

    Raises:
        SourceModelError: the file is not a readable skops archive.
        DependencyError: skops is not installed.
    """
    try:
        import skops.io as sio
    except ImportError as exc:
        raise missing_dependency("skops", "sklearn") from exc
    try:
        return list(sio.get_untrusted_types(file=path))
    except Exception as exc:  # zipfile/json errors for corrupt files
        raise SourceModelError(
            f"cannot read {path} with skops: {str(exc).splitlines()[0]}",
            "the file may be truncated or corrupt; re-save it with skops.io.dump",
        ) from exc


def scan_skops(path: Path) -> tuple[list[str], list[Finding]]:
    """(types trusted, findings for the types refused) for a ``.skops`` file.

    Raises:
        SourceModelError / DependencyError: as :func:`untrusted_types`.
    """
    trusted, findings = [], []
    for name in untrusted_types(path):
        if is_sklearn_class(name):
            trusted.append(name)
        else:
            what = (
                "a function or non-class object" if name.startswith("sklearn.") else "a type from outside scikit-learn"
            )
            findings.append(Finding("skops-type", name, str(path), what, SKOPS_HINT))
    return trusted, findings


def trusted_skops_types(path: Path) -> list[str]:
    """The exact list to pass as ``skops.io.load(path, trusted=...)``: the file's types beyond
    skops' defaults, every one a scikit-learn class.

    Raises:
        UnsafeModelError: the file needs a type optkit does not trust (a function, or a type from
            outside scikit-learn); the message names it and the file.
        SourceModelError / DependencyError: as :func:`untrusted_types`.
    """
    from optkit.scan.report import ScanReport

    trusted, findings = scan_skops(path)
    ScanReport("sklearn", findings=findings).raise_for_findings()
    return trusted
