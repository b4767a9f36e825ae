"""Tiny PyTorch models saved the ways users save them (no optkit metadata embedded): an LSTM tagger
as a dynamic and a static ``torch.export`` program, a dict-output and a CNN TorchScript model, a
state dict with its model code, and a Hugging Face cache folder. Random weights, seeded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

VOCAB, TAGS, FIXED_LEN = 50, 5, 32

#: the model code a user keeps beside a state dict: a factory that builds the module
FACTORY_CODE = """
import torch


class Tagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 16)
        self.rnn = torch.nn.GRU(16, 16, batch_first=True)
        self.head = torch.nn.Linear(16, 5)

    def forward(self, input_ids):
        hidden, _ = self.rnn(self.embed(input_ids))
        return self.head(hidden)


def build():
    return Tagger()


def wrong():
    model = Tagger()
    model.extra = torch.nn.Linear(2, 2)
    return model


def not_a_module():
    return 42
"""


class LstmTagger(torch.nn.Module):
    """Token ids ``(batch, sequence)`` int64 → tag logits ``(batch, sequence, TAGS)`` float32."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 16)
        self.rnn = torch.nn.LSTM(16, 16, batch_first=True)
        self.head = torch.nn.Linear(16, TAGS)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.rnn(self.embed(input_ids))
        return self.head(hidden)


class ConvTagger(torch.nn.Module):
    """Token ids ``(batch, sequence)`` int64 → tag logits ``(batch, sequence, TAGS)``: a 1-D
    convolution, whose sequence axis stays dynamic under torch.export (an LSTM's does not)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 16)
        self.conv = torch.nn.Conv1d(16, TAGS, 3, padding=1)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.conv(self.embed(input_ids).transpose(1, 2)).transpose(1, 2)


class DictHeads(torch.nn.Module):
    """Features ``(batch, 8)`` float32 → ``{"logits": (batch, 3), "embedding": (batch, 4)}``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(8, 4)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        embedding = torch.tanh(self.body(features))
        return {"logits": self.head(embedding), "embedding": embedding}


class TinyCnn(torch.nn.Module):
    """Images ``(batch, 3, 16, 16)`` float32 → class logits ``(batch, 4)`` and the pooled features
    ``(batch, 6)`` (two outputs, as a tuple)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.head = torch.nn.Linear(6, 4)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.relu(self.conv(pixels)).mean(dim=(2, 3))
        return self.head(pooled), pooled


def _ids(rows: int, length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, size=(rows, length), dtype=np.int64)


def build_user_models(folder: Path) -> dict[str, Path]:
    """Build every model and its data in ``folder``; returns their paths by name:

    * ``lstm_auto`` (.pt2 exported with ``dynamic_shapes`` ``Dim.AUTO`` on both axes: torch keeps
      the batch dynamic and specializes the LSTM's sequence axis to 32) with ``ids_32``;
    * ``lstm_static`` (.pt2 traced at sequence 32, nothing dynamic) with ``ids_32``;
    * ``conv_dynamic`` (.pt2, batch 1..64 and sequence 2..48 dynamic) with ``ids_20`` (sequence 20)
      and ``ids_60`` (sequence 60: beyond the program's range);
    * ``dict_ts`` (TorchScript returning a dict) with ``features``;
    * ``cnn_ts`` (TorchScript CNN, two outputs) with ``pixels``;
    * ``state_dict`` (a GRU tagger's weights) with ``factory`` (its model code) and ``ids_20``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tagger = LstmTagger().eval()
    example = (torch.from_numpy(_ids(2, FIXED_LEN, 1)),)
    auto = torch.export.Dim.AUTO
    program = torch.export.export(tagger, example, dynamic_shapes={"input_ids": {0: auto, 1: auto}})
    torch.export.save(program, str(folder / "lstm_auto.pt2"))
    torch.export.save(torch.export.export(tagger, example), str(folder / "lstm_static.pt2"))
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=2, max=48)
    dynamic = torch.export.export(ConvTagger().eval(), example, dynamic_shapes={"input_ids": {0: batch, 1: seq}})
    torch.export.save(dynamic, str(folder / "conv_dynamic.pt2"))
    np.savez(folder / "ids_20.npz", input_ids=_ids(6, 20, 2))
    np.savez(folder / "ids_60.npz", input_ids=_ids(6, 60, 3))
    np.savez(folder / "ids_32.npz", input_ids=_ids(6, FIXED_LEN, 4))

    heads = DictHeads().eval()
    features = torch.randn(2, 8)
    torch.jit.save(torch.jit.trace(heads, (features,), strict=False), str(folder / "dict.pt"))
    np.savez(folder / "features.npz", features=np.random.default_rng(5).normal(size=(6, 8)).astype(np.float32))

    cnn = TinyCnn().eval()
    torch.jit.save(torch.jit.trace(cnn, (torch.randn(2, 3, 16, 16),)), str(folder / "cnn.pt"))
    np.savez(folder / "pixels.npz", pixels=np.random.default_rng(6).normal(size=(6, 3, 16, 16)).astype(np.float32))

    code = folder / "code" / "user_tagger.py"
    code.parent.mkdir()
    code.write_text(FACTORY_CODE)
    namespace: dict = {}
    exec(compile(FACTORY_CODE, str(code), "exec"), namespace)  # the same class the CLI will build
    torch.save(namespace["build"]().state_dict(), str(folder / "tagger_state.pt"))
    return {
        "lstm_auto": folder / "lstm_auto.pt2",
        "conv_dynamic": folder / "conv_dynamic.pt2",
        "lstm_static": folder / "lstm_static.pt2",
        "ids_20": folder / "ids_20.npz",
        "ids_60": folder / "ids_60.npz",
        "ids_32": folder / "ids_32.npz",
        "dict_ts": folder / "dict.pt",
        "features": folder / "features.npz",
        "cnn_ts": folder / "cnn.pt",
        "pixels": folder / "pixels.npz",
        "state_dict": folder / "tagger_state.pt",
        "factory": code,
    }


def build_hf_cache(cache: Path, hf_folder: Path, repo_id: str = "tiny-org/tiny-bert") -> Path:
    """Lay ``hf_folder`` out in a Hugging Face hub cache at ``cache`` (``HF_HUB_CACHE``):
    ``models--org--name/refs/main`` naming a revision, and the files under ``snapshots/<rev>/``.
    Returns the snapshot folder."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, file in enumerate(sorted(p for p in hf_folder.iterdir() if p.is_file())):
        blob = repo / "blobs" / f"{i:040d}"
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(Path("..", "..", "blobs", blob.name))  # as the hub lays it out
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot
