"""Shared fixtures: tiny real models built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import build_tiny_bert, build_tiny_sklearn  # noqa: E402


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Paths of the tiny BERT token classifier: hf, pt, pt2, conll, pickle, state_dict."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_sklearn(tmp_path_factory) -> dict[str, Path]:
    """Paths of the tiny scikit-learn classifier: skops, onnx (skl2onnx export), npz (X, y)."""
    pytest.importorskip("skl2onnx")
    pytest.importorskip("skops")
    return build_tiny_sklearn(tmp_path_factory.mktemp("tiny-sklearn"))
