"""What a fitted scikit-learn model takes as its one input ``X``: float features, a column of
strings (text vectorizers), or a table of strings (encoders fitted on strings).

* ``CountVectorizer`` / ``TfidfVectorizer`` / ``HashingVectorizer`` first: ``X`` is one string per
  sample, shape ``(batch,)``, dtype ``str`` (skl2onnx's ``StringTensorType([None])``).
* ``OneHotEncoder`` / ``OrdinalEncoder`` fitted on strings first (or a ``ColumnTransformer`` whose
  every column is such an encoder's): ``X`` is ``(batch, n_features)`` strings.
* otherwise ``(batch, n_features)`` float32.

A ``ColumnTransformer`` that mixes string and numeric columns would need one ONNX input per column
type, while optkit's data (one ``X`` array per ``.npz``) holds one dtype: it is refused (SourceModelError).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optkit.errors import SourceModelError
from optkit.io_spec import TensorSpec

TEXT_VECTORIZERS = ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer")
STRING_ENCODERS = ("OneHotEncoder", "OrdinalEncoder")


def first_step(model: Any) -> Any:
    """The first step of a pipeline (recursively), or the model itself."""
    while hasattr(model, "steps"):
        model = model.steps[0][1]
    return model


def is_text_vectorizer(step: Any) -> bool:
    """True for scikit-learn's text vectorizers (they take one string per sample)."""
    return type(step).__name__ in TEXT_VECTORIZERS and type(step).__module__.startswith("sklearn.")


def _string_encoder(step: Any) -> bool:
    """True for an encoder fitted on strings (its ``categories_`` hold str/object values)."""
    if type(step).__name__ not in STRING_ENCODERS:
        return False
    categories = getattr(step, "categories_", [])
    return bool(categories) and all(np.asarray(c).dtype.kind in "OUS" for c in categories)


def _column_kinds(transformer: Any) -> set[str]:
    """``{"str", "float"}`` subsets: what each column block of a ColumnTransformer takes."""
    kinds = set()
    for name, step, _columns in getattr(transformer, "transformers_", []):
        if name == "remainder" and step == "drop" or step == "drop":
            continue
        inner = first_step(step) if not isinstance(step, str) else step
        kinds.add("str" if not isinstance(inner, str) and _string_encoder(inner) else "float")
    return kinds


def input_spec(model: Any, path: object) -> TensorSpec:
    """The :class:`TensorSpec` of input ``X`` (see the module docstring).

    Raises:
        SourceModelError: a ColumnTransformer mixing string and numeric columns (named, with what is
            supported), or a model without ``n_features_in_`` that is not a text pipeline.
    """
    step = first_step(model)
    if is_text_vectorizer(step):
        return TensorSpec("X", "str", ("batch",))
    features = getattr(model, "n_features_in_", None) or getattr(step, "n_features_in_", None)
    if features is None:
        raise SourceModelError(
            f"{path}: cannot tell how many input features {type(model).__name__} takes (no n_features_in_)",
            "fit the model on an array (scikit-learn >= 1.0 records n_features_in_)",
        )
    if type(step).__name__ == "ColumnTransformer":
        kinds = _column_kinds(step)
        if kinds == {"str", "float"}:
            raise SourceModelError(
                f"{path}: the ColumnTransformer mixes string and numeric columns, which would need one ONNX "
                "input per column type; optkit feeds one array X",
                "supported: all-numeric columns, all-string columns (OneHotEncoder/OrdinalEncoder), or "
                "a text vectorizer; encode the strings as numbers before the model",
            )
        if kinds == {"str"}:
            return TensorSpec("X", "str", ("batch", int(features)))
    elif _string_encoder(step):
        return TensorSpec("X", "str", ("batch", int(features)))
    return TensorSpec("X", "float32", ("batch", int(features)))
