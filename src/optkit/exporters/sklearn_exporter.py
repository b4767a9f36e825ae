"""scikit-learn → ONNX with skl2onnx (``zipmap`` off so probabilities are a plain tensor).

Precision: skl2onnx converts with float32 inputs. Measured on this stack (skl2onnx 1.20,
onnxruntime 1.32), the double-precision conversion of tree ensembles does not load in ONNX Runtime
(TreeEnsemble outputs must be float), so tree models run in float32. Trees in scikit-learn's
RandomForest/GradientBoosting/DecisionTree also split on float32 features, so they agree exactly;
HistGradientBoosting splits in float64 and can flip a decision for a sample within float32 rounding
of a threshold: validation counts and lists every such disagreement.
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
from optkit.sources.sklearn_source import SklearnSource


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
    x = np.asarray(example[source.info.input_names[0]], dtype=np.float32)
    options = {id(source.final): {"zipmap": False}} if source.is_classifier else None
    try:
        model = to_onnx(source.model, x[:1], options=options, target_opset={"": config.opset, "ai.onnx.ml": 3})
    except Exception as exc:  # skl2onnx raises RuntimeError/MissingShapeCalculator/... per estimator
        raise ExportError(
            f"skl2onnx cannot convert {type(source.final).__name__}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            "see skl2onnx's supported_converters(); convert a supported estimator",
        ) from exc
    save_onnx(model, out_path, external_threshold_mb)
    details: dict[str, Figure] = {
        "exporter": "skl2onnx",
        "opset": config.opset,
        "source_kind": source.kind,
        "input_dtype": "float32",
        "estimator": type(source.final).__name__,
        "tree_model": source.has_trees,
        "nodes": len(model.graph.node),
    }
    return PassOutcome(out_path, details)
