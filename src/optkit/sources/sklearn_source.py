"""scikit-learn sources: ``.skops`` files (safe: only scikit-learn classes and the types skops itself
trusts are loaded, never functions; see :mod:`optkit.scan`) and, only with ``trust_pickle``,
``.joblib``/``.pkl`` pickles (unpickling runs code from the file).

Outputs follow skl2onnx's names with ``zipmap`` off: classifiers ``label`` (int64, N) and
``probabilities`` (float, N × classes); regressors ``variable`` (float, N × 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from optkit.errors import OptkitError, SourceModelError, missing_dependency
from optkit.io_spec import ModelInfo, TensorSpec
from optkit.runners.base import Feeds, Runner
from optkit.sources.base import SourceModel

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
TREE_MODULES = ("sklearn.ensemble", "sklearn.tree")


class SklearnSource(SourceModel):
    """A fitted scikit-learn estimator or pipeline.

    Attributes:
        model: the estimator; ``final`` is the last step of a pipeline (or the model itself).
    """

    framework = "sklearn"
    version_modules = {"scikit-learn": "sklearn"}

    def __init__(self, path: Path, info: ModelInfo, kind: str, model: Any) -> None:
        super().__init__(path, info)
        self.kind = kind
        self.model = model
        self.final = model.steps[-1][1] if hasattr(model, "steps") else model

    @property
    def is_classifier(self) -> bool:
        """True for classifiers (they have ``predict_proba``)."""
        return self.info.task == "classification"

    @property
    def has_trees(self) -> bool:
        """True when any step is a tree ensemble or decision tree."""
        steps = [s for _, s in self.model.steps] if hasattr(self.model, "steps") else [self.model]
        return any(type(s).__module__.startswith(TREE_MODULES) for s in steps)

    def runner(self, threads: int, device: str = "cpu") -> Runner:
        return SklearnRunner(self, threads)


class SklearnRunner(Runner):
    """Reference runner: ``predict`` (and ``predict_proba`` for classifiers) on ``feeds["X"]``.

    The estimator runs as it was saved (its own ``n_jobs``: joblib workers cost ~100 ms per call
    on small batches, so forcing them would make the comparison unfair); BLAS/OpenMP pools are
    limited to ``threads`` with threadpoolctl, as ONNX Runtime's intra-op pool is.
    """

    name = "scikit-learn"

    def __init__(self, source: SklearnSource, threads: int) -> None:
        super().__init__(threads)
        self.source = source

    def _activate(self) -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(self.threads)

    def _infer(self, feeds: Feeds) -> Feeds:
        x = feeds[self.source.info.input_names[0]]
        model = self.source.model
        if self.source.is_classifier:
            return {"label": np.asarray(model.predict(x)), "probabilities": np.asarray(model.predict_proba(x))}
        return {"variable": np.asarray(model.predict(x)).reshape(len(x), -1)}


def load(
    path: Path, workdir: Path, trust_pickle: bool = False, threads: int = 2, trust_remote_code: bool = False
) -> SklearnSource:
    """Load a ``.skops`` file, or a pickle with ``trust_pickle``.

    Raises:
        SourceModelError: untrusted types in a .skops file, a pickle without trust, a corrupt file,
            or an object that is not a fitted scikit-learn estimator.
        DependencyError: scikit-learn/skops not installed.
    """
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise missing_dependency("scikit-learn", "sklearn") from exc
    suffix = path.suffix.lower()
    if suffix == ".skops":
        model, kind = _load_skops(path, trust_pickle), "skops"
    elif suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise SourceModelError(
                f"{path} is a pickle; loading it would run arbitrary code from the file",
                "save the model with skops (skops.io.dump) or pass --trust-pickle if you trust this file",
            )
        import joblib

        try:
            model = joblib.load(path)
        except Exception as exc:
            raise SourceModelError(
                f"cannot unpickle {path}: {str(exc).splitlines()[0]}", "the file may be truncated or corrupt"
            ) from exc
        kind = "pickle"
    else:
        raise SourceModelError(
            f"unsupported scikit-learn file '{suffix}' ({path})",
            "use a .skops file (or .joblib/.pkl with --trust-pickle)",
        )
    if not hasattr(model, "predict") or not hasattr(model, "n_features_in_"):
        raise SourceModelError(
            f"{path} holds a {type(model).__name__}, not a fitted scikit-learn estimator",
            "save a fitted estimator or pipeline",
        )
    classifier = hasattr(model, "predict_proba") and hasattr(model, "classes_")
    info = ModelInfo(
        task="classification" if classifier else "regression",
        input_names=["X"],
        output_names=["label", "probabilities"] if classifier else ["variable"],
        dynamic_axes={"X": {0: "batch"}},
        input_specs={"X": TensorSpec("X", "float32", ("batch", int(model.n_features_in_)))},
    )
    if classifier:
        info.labels = [str(c) for c in model.classes_]
    return SklearnSource(path, info, kind, model)


def _load_skops(path: Path, trust: bool) -> Any:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise missing_dependency("skops", "sklearn") from exc
    try:
        from optkit.scan import trusted_skops_types

        trusted = sio.get_untrusted_types(file=path) if trust else trusted_skops_types(path)
        return sio.load(path, trusted=trusted or None)
    except OptkitError:
        raise
    except Exception as exc:  # zipfile/json errors for corrupt files
        raise SourceModelError(
            f"cannot load {path} with skops: {str(exc).splitlines()[0]}",
            "the file may be truncated or corrupt; re-save it with skops.io.dump",
        ) from exc
