"""Gradient-boosting libraries with a scikit-learn API, made convertible by skl2onnx.

skl2onnx converts scikit-learn's own estimators only; for LightGBM and XGBoost it raises "Unable to
find a shape calculator" until a converter is registered. onnxmltools ships those converters
(``convert_lightgbm``, ``convert_xgboost``): :func:`register_boosters` registers them with
skl2onnx's ``update_registered_converter`` for ``LGBMClassifier``/``LGBMRegressor`` and
``XGBClassifier``/``XGBRegressor``, with skl2onnx's own linear shape calculators (onnxmltools'
XGBoost shape calculator checks onnxmltools' tensor types and refuses skl2onnx's), the recipe
skl2onnx documents in "Convert a pipeline with a LightGBM / XGBoost model". They then convert alone
or as the last step of a pipeline, as TreeEnsemble ops in float32.

CatBoost exports ONNX itself (``save_model(format="onnx")``); :func:`catboost_model` tells when
that path applies (the catboost package is importable and the model is a bare CatBoost estimator).
It is not exercised by optkit's tests (catboost is not installed in optkit's environment).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from optkit.errors import missing_dependency

_registered: set[str] = set()


def _needs(model: Any) -> set[str]:
    """The top-level packages among ``model``'s steps (``lightgbm``, ``xgboost``, ...)."""
    steps = [s for _, s in model.steps] if hasattr(model, "steps") else [model]
    return {type(s).__module__.split(".")[0] for s in steps}


def register_boosters(model: Any) -> list[str]:
    """Register onnxmltools' converters for the LightGBM/XGBoost estimators in ``model`` (idempotent).

    Returns:
        The packages registered for this model (``["lightgbm"]``, ...), for the export's details.

    Raises:
        DependencyError: the model holds a LightGBM/XGBoost estimator but onnxmltools is missing.
    """
    wanted = _needs(model) & {"lightgbm", "xgboost"}
    if not wanted:
        return []
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )
    except ImportError as exc:
        raise missing_dependency("skl2onnx", "sklearn") from exc
    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for package in sorted(wanted - _registered):
        try:
            if package == "lightgbm":
                from lightgbm import LGBMClassifier, LGBMRegressor
                from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

                pairs = [(LGBMClassifier, "LightGbmLGBMClassifier"), (LGBMRegressor, "LightGbmLGBMRegressor")]
                convert = convert_lightgbm
            else:
                from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
                from xgboost import XGBClassifier, XGBRegressor

                pairs = [(XGBClassifier, "XGBoostXGBClassifier"), (XGBRegressor, "XGBoostXGBRegressor")]
                convert = convert_xgboost
        except ImportError as exc:
            raise missing_dependency("onnxmltools", "sklearn") from exc
        classifier, regressor = pairs
        update_registered_converter(
            classifier[0],
            classifier[1],
            calculate_linear_classifier_output_shapes,
            convert,
            options=classifier_options,
        )
        update_registered_converter(
            regressor[0], regressor[1], calculate_linear_regressor_output_shapes, convert, options={"split": None}
        )
        _registered.add(package)
    return sorted(wanted)


def catboost_model(model: Any) -> bool:
    """True when ``model`` is a bare CatBoost estimator and the catboost package is importable."""
    return type(model).__module__.split(".")[0] == "catboost" and importlib.util.find_spec("catboost") is not None
