"""Tiny real models for fast tests: a 2-layer BERT token classifier (random weights, seeded) saved
the three ways optkit reads PyTorch models, with a small word-level vocabulary and CoNLL data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

WORDS = [
    "john",
    "mary",
    "paris",
    "london",
    "lives",
    "in",
    "works",
    "at",
    "the",
    "city",
    "and",
    "visited",
    "berlin",
    "anna",
    "likes",
    "rome",
    "today",
    "he",
    "she",
    "went",
    "to",
    "big",
    "small",
    "river",
    "a",
    "new",
    "old",
    "home",
    "from",
    "with",
    "friend",
    "train",
    "car",
    "walked",
    "saw",
    "nice",
]
LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
PEOPLE, PLACES = {"john", "mary", "anna"}, {"paris", "london", "berlin", "rome"}
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


class TokenLogits(torch.nn.Module):
    """Explicit-tensor wrapper returning only the logits (what tracing and export need)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def _tag(word: str) -> str:
    return "B-PER" if word in PEOPLE else "B-LOC" if word in PLACES else "O"


def write_conll(path: Path, n: int, seed: int = 0) -> Path:
    """Write ``n`` random sentences over WORDS with rule-based tags as CoNLL."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        for word in rng.choices(WORDS, k=rng.randint(3, 12)):
            lines.append(f"{word}\t{_tag(word)}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def build_tiny_bert(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Build ``hf/``, ``model.pt`` (TorchScript with embedded metadata), ``model.pt2`` and
    ``test.conll`` in ``folder``; returns their paths by name."""
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={tag: i for i, tag in enumerate(LABELS)},
        architectures=["BertForTokenClassification"],
    )
    model = BertForTokenClassification(config).eval()
    model.config._attn_implementation = "eager"
    hf = folder / "hf"
    model.save_pretrained(hf)
    tokenizer.save_pretrained(hf)

    wrapper = TokenLogits(model).eval()
    example = (torch.randint(5, 20, (2, 8)), torch.ones(2, 8, dtype=torch.long), torch.zeros(2, 8, dtype=torch.long))
    extra = {
        "optkit/model_info.json": json.dumps(
            {"task": "token-classification", "input_names": INPUTS, "output_names": ["logits"]}
        )
    }
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        extra[f"optkit/hf/{name}"] = (hf / name).read_text()
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, example, check_trace=False)
    torch.jit.save(traced, str(folder / "model.pt"), _extra_files=extra)
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("sequence", min=2, max=40)
    program = torch.export.export(wrapper, example, dynamic_shapes={n: {0: batch, 1: seq} for n in INPUTS})
    torch.export.save(program, str(folder / "model.pt2"), extra_files=extra)
    torch.save(wrapper, str(folder / "pickled.pt"))
    torch.save(wrapper.state_dict(), str(folder / "state_dict.pt"))
    conll = write_conll(folder / "test.conll", 40)
    return {
        "hf": hf,
        "pt": folder / "model.pt",
        "pt2": folder / "model.pt2",
        "conll": conll,
        "pickle": folder / "pickled.pt",
        "state_dict": folder / "state_dict.pt",
    }


def build_tiny_sklearn(folder: Path) -> dict[str, Path]:
    """A scaled logistic regression fitted on scikit-learn's wine data (13 features, 3 classes), saved
    as ``model.skops`` and converted with skl2onnx (zipmap off) to ``model.onnx``; held-out rows with
    gold labels in ``test.npz`` (``X`` float64, ``y``). Returns their paths by name."""
    import numpy as np
    import onnx
    import skops.io as sio
    from skl2onnx import to_onnx
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder.mkdir(parents=True, exist_ok=True)
    x, y = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x[1::2], y[1::2])
    sio.dump(model, folder / "model.skops")
    onx = to_onnx(
        model,
        x[:1].astype(np.float32),
        options={id(model.steps[-1][1]): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    onnx.save_model(onx, str(folder / "model.onnx"))
    np.savez(folder / "test.npz", X=x[::2], y=y[::2])
    return {"skops": folder / "model.skops", "onnx": folder / "model.onnx", "npz": folder / "test.npz"}
