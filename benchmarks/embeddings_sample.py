"""Benchmark the sentence-embedding sample (all-MiniLM-L6-v2): pooled-cosine accuracy and speed of
each int8 variant vs PyTorch eager (transformers' default SDPA attention), in one table.

Usage (after ``python sample_models/build_minilm_embeddings.py``)::

    python benchmarks/embeddings_sample.py [--iterations 50] [--threads 2]

Each row is one ``optkit.convert`` run on the real-text file (256 tweets): the artifact and PyTorch
are timed in the same process on the same inputs with the same threads (docs/benchmarks.md). The
``transformer-int8`` row is the accuracy-aware search; the others fix the int8 settings by hand, as
a user without the search would. Prints a Markdown table; writes nothing else.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from runs import convert_each, int8_settings, print_table, speed_cells

from optkit.recipe import QuantizeDynamicPass, load_recipe

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_models" / "minilm-embeddings"


def fixed(common: dict, name: str, **settings):
    """transformer-int8 with the search off and the given quantize_dynamic settings."""
    recipe = load_recipe("transformer-int8", common)
    recipe.passes = [
        p.model_copy(update={"search": "off", **settings}) if isinstance(p, QuantizeDynamicPass) else p
        for p in recipe.passes
    ]
    recipe.name = name
    return recipe


def variants(iterations: int, threads: int):
    common = {"benchmark.iterations": iterations, "benchmark.threads": threads, "benchmark.batch_sizes": [1, 8]}
    return [
        (
            "fp32 (export+simplify+fuse)",
            load_recipe("fp32", {**common, "validation.gates": [{"metric": "pooled_cosine_min", "min": 0.99}]}),
        ),
        ("int8 per-tensor QInt8 (common default)", fixed(common, "int8-per-tensor", per_channel=False)),
        ("int8 per-channel QInt8", fixed(common, "int8-per-channel", per_channel=True)),
        ("transformer-int8 (accuracy-aware search)", load_recipe("transformer-int8", common)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, default=SAMPLE / "hf", help="HF model folder")
    parser.add_argument("--data", type=Path, default=SAMPLE / "sentences.txt", help="one sentence per line")
    args = parser.parse_args()

    def row(label, result, out, wall):
        m = result.accuracy.metrics
        return [
            label,
            f"{m['pooled_cosine_mean']:.4f}",
            f"{m['pooled_cosine_min']:.4f}",
            *speed_cells(result),
            int8_settings(result),
            "approved" if result.approved else "rejected",
            f"{wall:.0f}",
        ]

    rows = convert_each(args.model, args.data, variants(args.iterations, args.threads), row)
    print_table(
        [
            "artifact",
            "pooled cosine mean",
            "pooled cosine min",
            "PyTorch p50 1×128 (ms)",
            "artifact p50 1×128 (ms)",
            "speed-up 1×128",
            "PyTorch p50 8×128 (ms)",
            "artifact p50 8×128 (ms)",
            "speed-up 8×128",
            "int8 settings",
            "verdict",
            "convert wall (s)",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
