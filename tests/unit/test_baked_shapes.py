"""A PyTorch model whose export bakes a dimension (its code takes a Python ``int`` from a tensor's
shape, which tracing turns into a constant) is rejected with the dimension named, while its
eager source works at every shape; a model that keeps sizes as tensors is approved, with the
shapes checked in the manifest. Built as a state dict plus model code (``--model-code``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import optkit
from optkit.errors import ExportError
from tests_support import FAST

CODE = """
import torch


class Pooler(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, input_ids):
        hidden = self.embed(input_ids)
        return self.head(hidden.mean(1))


class LengthBaked(Pooler):
    def forward(self, input_ids):
        hidden = self.embed(input_ids)
        return self.head(hidden.sum(1) / int(hidden.shape[1]))  # a constant once traced


class BatchBaked(Pooler):
    def forward(self, input_ids):
        return self.head(self.embed(input_ids)).reshape(int(input_ids.shape[0]), -1)


def dynamic():
    return Pooler()


def length_baked():
    return LengthBaked()


def batch_baked():
    return BatchBaked()
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baked")
    (folder / "poolers.py").write_text(CODE)
    namespace: dict = {}
    exec(compile(CODE, str(folder / "poolers.py"), "exec"), namespace)
    torch.manual_seed(0)
    torch.save(namespace["dynamic"]().state_dict(), str(folder / "pooler.pt"))
    ids = np.random.default_rng(0).integers(0, 50, size=(6, 20), dtype=np.int64)
    np.savez(folder / "ids.npz", input_ids=ids)
    return folder


def convert(models, factory: str, out):
    return optkit.convert(
        models / "pooler.pt",
        "fp32",
        out,
        data=str(models / "ids.npz"),
        overrides={**FAST, "benchmark.sequence_lengths": [20]},
        model_code=f"{models / 'poolers.py'}:{factory}",
    )


def test_a_dynamic_model_is_approved_with_the_shapes_checked(models, tmp_path):
    result = convert(models, "dynamic", tmp_path / "o")
    assert result.approved, [(g.name, g.value, g.status) for g in result.gates]
    export = next(s for s in result.steps if s.name == "export")
    checked = export.details["shapes_checked"]
    assert checked["batch_sizes"] == [1, 3] and checked["sequence_lengths"] == [10, 19]
    assert checked["export_shape"] == {"batch_size": 2, "sequence_length": 20}
    validate = next(s for s in result.steps if s.name == "validate accuracy")
    assert validate.details["padding"] == "both" and validate.details["paddings_validated"] == ["fixed"]


def test_a_length_baked_by_the_trace_is_rejected_naming_it(models, tmp_path):
    with pytest.raises(ExportError) as caught:
        convert(models, "length_baked", tmp_path / "o")
    message = caught.value.message
    assert "sequence 20 baked into the graph" in message
    assert "at sequence length 10 (axis 1 of 'input_ids'; the export's: 20)" in message
    assert not (tmp_path / "o").exists()


def test_a_batch_baked_by_the_trace_is_rejected_naming_it(models, tmp_path):
    with pytest.raises(ExportError) as caught:
        convert(models, "batch_baked", tmp_path / "o")
    assert "batch 2 baked into the graph" in caught.value.message
    assert "at batch size 1 (axis 0 of 'input_ids'; the export's: 2)" in caught.value.message
