"""scikit-learn → ONNX with skl2onnx (``zipmap`` off so probabilities are a plain tensor).

Precision: skl2onnx converts with float32 inputs. Measured on this stack (skl2onnx 1.20,
onnxruntime 1.32), the double-precision conversion of tree ensembles does not load in ONNX Runtime
(TreeEnsemble outputs must be float), so tree models run in float32. Trees in scikit-learn's
RandomForest/GradientBoosting/DecisionTree also split on float32 features, so they agree exactly;
HistGradientBoosting splits in float64 and can flip a decision for a sample within float32 rounding
of a threshold: validation counts and lists every such disagreement. LightGBM and XGBoost split on
float32 thresholds too, with onnxmltools' converters (:mod:`optkit.exporters.sklearn_boosters`).

String inputs (text vectorizers, encoders fitted on strings) export as a ``tensor(string)`` input.
Text vectorizers lower-case with ONNX's ``StringNormalizer``, whose ``locale`` defaults to
``en_US.UTF-8``: ONNX Runtime refuses to load the model where that locale is not installed (most
containers), so optkit sets ``locale`` to ``C.UTF-8``, which glibc always has (recorded in the
details; validation compares the results with scikit-learn's own lower-casing).

Errors name the estimator and what is supported: "Unable to find a shape calculator" (no converter
registered for the type) is an ExportError, exit 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optkit.errors import ExportError, missing_dependency
from optkit.onnx_io import save_onnx
from optkit.pass_context import PassOutcome
from optkit.recipe import ExportConfig
from optkit.records.figures import Figure
from optkit.runners.base import Feeds
from optkit.sources.sklearn_inputs import is_text_vectorizer
from optkit.sources.sklearn_source import SklearnSource

TEXT_LOCALE = "C.UTF-8"


def export(
    source: SklearnSource, example: Feeds, config: ExportConfig, out_path: Path, external_threshold_mb: float = 1800.0
) -> PassOutcome:
    """Convert with ``skl2onnx.to_onnx`` at opset ``config.opset`` (ai.onnx.ml opset 3).

    Raises:
        ExportError: skl2onnx has no converter for an estimator (named in the message).
    """
    try:
        from skl2onnx import to_onnx
    except ImportError as exc:
        raise missing_dependency("skl2onnx", "sklearn") from exc
    from optkit.exporters.sklearn_boosters import catboost_model, register_boosters

    spec = source.info.input_specs[source.info.input_names[0]]
    x = np.asarray(example[source.info.input_names[0]], dtype=str if spec.dtype == "str" else np.float32)
    if catboost_model(source.model):
        return _export_catboost(source, config, out_path)
    boosters = register_boosters(source.model)
    options = _options(source)
    try:
        model = to_onnx(source.model, x[:1], options=options, target_opset={"": config.opset, "ai.onnx.ml": 3})
    except Exception as exc:  # skl2onnx raises RuntimeError/MissingShapeCalculator/... per estimator
        raise _export_error(source, exc) from exc
    save_onnx(model, out_path, external_threshold_mb)
    details: dict[str, Figure] = {
        "exporter": "skl2onnx" + (f" + onnxmltools ({', '.join(boosters)})" if boosters else ""),
        "opset": config.opset,
        "source_kind": source.kind,
        "input_dtype": "string" if spec.dtype == "str" else "float32",
        "estimator": type(source.final).__name__,
        "task": source.info.task,
        "tree_model": source.has_trees,
        "nodes": len(model.graph.node),
    }
    if any(is_text_vectorizer(step) for step in _steps(source.model)):
        details["string_normalizer_locale"] = TEXT_LOCALE
    return PassOutcome(out_path, details)


def _steps(model) -> list:
    """Every estimator of a (nested) pipeline or ColumnTransformer, and the model itself."""
    out, todo = [], [model]
    while todo:
        step = todo.pop()
        out.append(step)
        todo += [s for _, s in getattr(step, "steps", [])]
        todo += [s for _, s, _ in getattr(step, "transformers_", []) if not isinstance(s, str)]
    return out


def _options(source: SklearnSource) -> dict[int, dict] | None:
    """skl2onnx options: ``zipmap`` off for a classifier, the ``C.UTF-8`` locale for text vectorizers."""
    options: dict[int, dict] = {id(s): {"locale": TEXT_LOCALE} for s in _steps(source.model) if is_text_vectorizer(s)}
    if source.is_classifier:
        options[id(source.final)] = {"zipmap": False}
    return options or None


def _export_error(source: SklearnSource, exc: Exception) -> ExportError:
    """The one-line ExportError for a skl2onnx failure, naming the estimator that has no converter."""
    text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    if type(exc).__name__ == "MissingShapeCalculator" or "Unable to find a shape calculator" in text:
        import re

        found = re.search(r"<class '([\w.]+)'>", str(exc))
        name = found.group(1) if found else type(source.final).__name__
        return ExportError(
            f"skl2onnx has no ONNX converter for {name}",
            "supported: scikit-learn estimators skl2onnx lists (skl2onnx.supported_converters()), LightGBM and "
            "XGBoost (through onnxmltools), and CatBoost alone; replace that step with a supported one",
        )
    return ExportError(
        f"skl2onnx cannot convert {type(source.final).__name__}: {type(exc).__name__}: {text}",
        "see skl2onnx's supported_converters(); convert a supported estimator",
    )


def _export_catboost(source: SklearnSource, config: ExportConfig, out_path: Path) -> PassOutcome:
    """CatBoost's own ONNX export (``save_model(format="onnx")``) for a bare CatBoost estimator.

    Raises:
        ExportError: CatBoost refuses the export (its message).
    """
    try:
        source.model.save_model(str(out_path), format="onnx")
    except Exception as exc:  # CatBoostError
        raise ExportError(
            f"CatBoost cannot export {type(source.final).__name__} to ONNX: {str(exc).splitlines()[0][:300]}",
            "CatBoost exports numeric features only (no categorical or text features) to ONNX",
        ) from exc
    details: dict[str, Figure] = {
        "exporter": "catboost",
        "source_kind": source.kind,
        "input_dtype": "float32",
        "estimator": type(source.final).__name__,
        "task": source.info.task,
        "tree_model": True,
    }
    return PassOutcome(out_path, details)
