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


@pytest.fixture(scope="session")
def tiny_ner_int8(tiny, tmp_path_factory):
    """One approved ``ner-int8`` conversion of the tiny BERT on its CoNLL file (Python API, FAST
    benchmark, int8 search off: ``tests_support.NER_INT8_FIXED``): ``(ConvertResult, artifact folder)``.

    Shared read-only by the pipeline, verify and revalidate tests (one conversion instead of three);
    a test that edits the artifact works on a copy of the folder."""
    import optkit
    from tests_support import FAST, NER_INT8_FIXED

    out = tmp_path_factory.mktemp("tiny-ner-int8") / "ner-int8"
    result = optkit.convert(tiny["pt"], "ner-int8", out, data=str(tiny["conll"]), overrides={**FAST, **NER_INT8_FIXED})
    assert result.approved, [(g.name, g.value, g.status) for g in result.gates]
    return result, out
