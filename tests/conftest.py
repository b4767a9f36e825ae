"""Shared fixtures: tiny real models built once per session, and fast recipe overrides."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import build_tiny_bert  # noqa: E402

# Small benchmark settings so pipeline tests stay fast; gates are tested on their own figures.
FAST = {"benchmark.batch_sizes": [1], "benchmark.sequence_lengths": [16], "benchmark.iterations": 3,
        "benchmark.warmup": 1, "benchmark.gates": []}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Paths of the tiny BERT token classifier: hf, pt, pt2, conll, pickle, state_dict."""
    pytest.importorskip("torch")
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
