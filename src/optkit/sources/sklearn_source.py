"""scikit-learn sources: ``.skops`` files (safe: only scikit-learn classes and the types skops itself
trusts are loaded, never functions; see :mod:`optkit.scan`) and, only with ``trust_pickle``,
``.joblib``/``.pkl`` pickles (unpickling runs code from the file).

Outputs follow skl2onnx's names and shapes with ``zipmap`` off (``task`` in parentheses):

* classifiers (``classification``): ``label`` (int64, N) and ``probabilities`` (float, N × classes);
* regressors (``regression``): ``variable`` (float, N × 1);
* outlier detectors (``outlier-detection``: IsolationForest, OneClassSVM,
  LocalOutlierFactor(novelty=True), ...): ``label`` (int64, N × 1; 1 inlier, -1 outlier, from
  ``predict``) and ``scores`` (float, N × 1, ``decision_function``);
* clusterers with ``transform`` (``clustering``: KMeans, MiniBatchKMeans): ``label`` (int64, N,
  ``predict``) and ``scores`` (float, N × clusters, ``transform``: distance to each centre).

Models from LightGBM, XGBoost and CatBoost that follow scikit-learn's API load like scikit-learn
estimators (their types in a ``.skops`` file need ``--trust-skops-type``). The input ``X`` is float32
features, or strings for text and categorical pipelines (:mod:`optkit.sources.sklearn_inputs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from optkit.errors import OptkitError, SourceModelError, missing_dependency
from optkit.io_spec import ModelInfo, TensorSpec
from optkit.runners.base import Feeds, Runner
from optkit.sources.base import SourceModel
from optkit.sources.sklearn_inputs import input_spec

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
TREE_MODULES = ("sklearn.ensemble", "sklearn.tree", "lightgbm", "xgboost", "catboost")
#: ``{task: output names}``, in skl2onnx's order
OUTPUTS = {
    "classification": ["label", "probabilities"],
    "regression": ["variable"],
    "outlier-detection": ["label", "scores"],
    "clustering": ["label", "scores"],
}
SUPPORTED = (
    "classifiers, regressors, outlier detectors (predict + decision_function) and clusterers with "
    "predict + transform (KMeans, MiniBatchKMeans), as estimators or pipelines"
)


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
        model, task = self.source.model, self.source.info.task
        if task == "classification":
            return {"label": np.asarray(model.predict(x)), "probabilities": np.asarray(model.predict_proba(x))}
        if task == "outlier-detection":
            return {
                "label": np.asarray(model.predict(x)).astype(np.int64).reshape(len(x), 1),
                "scores": np.asarray(model.decision_function(x)).reshape(len(x), 1),
            }
        if task == "clustering":
            return {"label": np.asarray(model.predict(x)).astype(np.int64), "scores": np.asarray(model.transform(x))}
        return {"variable": np.asarray(model.predict(x)).reshape(len(x), -1)}


def task_of(model: Any, final: Any, path: object) -> str:
    """The model's task (a key of :data:`OUTPUTS`), from scikit-learn's estimator tags of its last step.

    Raises:
        SourceModelError: no ``predict``, or a kind optkit does not convert (named, with :data:`SUPPORTED`).
    """
    from sklearn.base import is_classifier, is_clusterer, is_outlier_detector, is_regressor

    name = type(final).__name__
    if not hasattr(model, "predict"):
        raise SourceModelError(f"{path} holds a {name}, which has no predict method", f"optkit converts {SUPPORTED}")
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        return "classification"
    if is_outlier_detector(final):
        if not hasattr(model, "decision_function"):
            raise SourceModelError(
                f"{path} holds a {name} (outlier detector) without decision_function",
                f"optkit converts {SUPPORTED}; for LocalOutlierFactor, fit it with novelty=True",
            )
        return "outlier-detection"
    if is_clusterer(final):
        if not hasattr(model, "transform"):
            raise SourceModelError(
                f"{path} holds a {name} (clusterer) without transform", f"optkit converts {SUPPORTED}"
            )
        return "clustering"
    if is_regressor(final):
        return "regression"
    if is_classifier(final):
        raise SourceModelError(
            f"{path} holds a {name}, a classifier without predict_proba",
            f"fit it with probability=True or wrap it in CalibratedClassifierCV; optkit converts {SUPPORTED}",
        )
    raise SourceModelError(
        f"{path} holds a {name} ({_tag(final, 'estimator_type') or 'no estimator type'}), which optkit does not "
        "convert",
        f"optkit converts {SUPPORTED}",
    )


def _tag(estimator: Any, name: str) -> Any:
    """One of scikit-learn's estimator tags (``sklearn.utils.get_tags``), None where unreadable."""
    try:
        from sklearn.utils import get_tags

        return getattr(get_tags(estimator), name, None)
    except Exception:  # a third-party estimator without tags
        return getattr(estimator, "_estimator_type", None)


def load(
    path: Path,
    workdir: Path,
    trust_pickle: bool = False,
    threads: int = 2,
    trust_remote_code: bool = False,
    trust_skops_types: tuple[str, ...] = (),
) -> SklearnSource:
    """Load a ``.skops`` file, or a pickle with ``trust_pickle``.

    Args:
        trust_skops_types: classes from outside scikit-learn the ``.skops`` file may hold
            (``--trust-skops-type``; see :func:`optkit.scan.skops_types.consented`).

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
        model, kind = _load_skops(path, trust_pickle, tuple(trust_skops_types)), "skops"
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
    _check_fitted(model, path)
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    task = task_of(model, final, path)
    spec: TensorSpec = input_spec(model, path)
    info = ModelInfo(
        task=task,
        input_names=["X"],
        output_names=list(OUTPUTS[task]),
        dynamic_axes={"X": {0: "batch"}},
        input_specs={"X": spec},
    )
    if task == "classification":
        info.labels = [str(c) for c in model.classes_]
    return SklearnSource(path, info, kind, model)


def _check_fitted(model: Any, path: Path) -> None:
    """Raises SourceModelError unless ``model`` is a fitted estimator (scikit-learn's ``check_is_fitted``)."""
    from sklearn.utils.validation import check_is_fitted

    name = type(model).__name__
    if not hasattr(model, "fit"):
        raise SourceModelError(
            f"{path} holds a {name}, not a scikit-learn estimator", f"save a fitted estimator or pipeline ({SUPPORTED})"
        )
    if not hasattr(model, "predict"):
        only_fit = hasattr(model, "fit_predict")
        raise SourceModelError(
            f"{path} holds a {name}, which has no predict method"
            + (" (it labels only the data it was fitted on, with fit_predict)" if only_fit else ""),
            ("for LocalOutlierFactor, fit it with novelty=True; " if only_fit else "") + f"optkit converts {SUPPORTED}",
        )
    try:
        check_is_fitted(model)
    except Exception as exc:  # NotFittedError, or a TypeError for an object that is no estimator
        raise SourceModelError(
            f"{path} holds a {type(model).__name__} that is not fitted ({str(exc).splitlines()[0][:120]})",
            "save the estimator after calling fit",
        ) from exc


def _load_skops(path: Path, trust: bool, consent: tuple[str, ...] = ()) -> Any:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise missing_dependency("skops", "sklearn") from exc
    try:
        from optkit.scan import trusted_skops_types

        trusted = sio.get_untrusted_types(file=path) if trust else trusted_skops_types(path, consent)
        return sio.load(path, trusted=trusted or None)
    except OptkitError:
        raise
    except Exception as exc:  # zipfile/json errors for corrupt files
        raise SourceModelError(
            f"cannot load {path} with skops: {str(exc).splitlines()[0]}",
            "the file may be truncated or corrupt; re-save it with skops.io.dump",
        ) from exc
