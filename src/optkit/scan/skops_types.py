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

TRUST_SKOPS_TYPE = "--trust-skops-type"
#: standard-library container classes skops leaves off its default list but that hold only data
SAFE_CLASSES = frozenset({"collections.OrderedDict"})

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
    return _is_class_of(name, "sklearn")


def _is_class_of(name: str, package: str) -> bool:
    """True when ``name`` starts with ``package.`` and resolves to a class defined under ``package``."""
    if not name.startswith(package + "."):
        return False
    obj = _resolve(name)
    return inspect.isclass(obj) and (obj.__module__ or "").split(".")[0] == package


def consented(name: str, consent: tuple[str, ...] | list[str]) -> bool:
    """True when ``name`` is named by one of the ``--trust-skops-type`` values in ``consent`` (the
    exact dotted name, or a prefix ending at a dot) **and** resolves to a class defined in that
    top-level package (a consented function is never trusted)."""
    named = any(name == c or name.startswith(c.rstrip(".") + ".") for c in consent if c.strip(". "))
    return named and _is_class_of(name, name.split(".")[0])


def consent_hint(name: str) -> str:
    """The hint for a type from outside scikit-learn: the flag that names its package."""
    package = name.split(".")[0]
    return (
        f"optkit loads only scikit-learn classes from .skops files; if you trust this file's {package} "
        f"classes, pass {TRUST_SKOPS_TYPE} {package} (or the exact type name; classes only, never "
        f"functions); or re-save the model without it"
    )


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


def scan_skops(path: Path, consent: tuple[str, ...] | list[str] = ()) -> tuple[list[str], list[Finding]]:
    """(types trusted, findings for the types refused) for a ``.skops`` file.

    Args:
        consent: the ``--trust-skops-type`` values (see :func:`consented`).

    Raises:
        SourceModelError / DependencyError: as :func:`untrusted_types`.
    """
    trusted, findings = [], []
    for name in untrusted_types(path):
        if is_sklearn_class(name) or name in SAFE_CLASSES or consented(name, consent):
            trusted.append(name)
        elif name.startswith("sklearn."):
            findings.append(Finding("skops-type", name, str(path), "a function or non-class object", SKOPS_HINT))
        elif any(name == c or name.startswith(c.rstrip(".") + ".") for c in consent):
            what = "named by --trust-skops-type, but not a class (functions are never trusted)"
            findings.append(Finding("skops-type", name, str(path), what, SKOPS_HINT))
        else:
            findings.append(
                Finding("skops-type", name, str(path), "a type from outside scikit-learn", consent_hint(name))
            )
    return trusted, findings


def trusted_skops_types(path: Path, consent: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The exact list to pass as ``skops.io.load(path, trusted=...)``: the file's types beyond
    skops' defaults, every one a scikit-learn class, a :data:`SAFE_CLASSES` container, or a class
    the user consented to (``consent``: the ``--trust-skops-type`` values).

    Raises:
        UnsafeModelError: the file needs a type optkit does not trust (a function, or a type from
            outside scikit-learn without consent); the message names it and the file, the hint
            the flag.
        SourceModelError / DependencyError: as :func:`untrusted_types`.
    """
    from optkit.scan.report import ScanReport

    trusted, findings = scan_skops(path, consent)
    ScanReport("sklearn", findings=findings).raise_for_findings()
    return trusted
