"""Benchmark the NER sample: accuracy and speed of each recipe variant vs PyTorch, in one table.

Usage (after building the sample with sample_models/build_ner_minilm.py)::

    python benchmarks/ner_sample.py [--iterations 50] [--threads 2] [--model PT --data CONLL]

Each row is one ``optkit.convert`` run: PyTorch (the TorchScript sample) and the artifact are
timed in the same process on the same real inputs with the same thread count (see
docs/benchmarks.md for the method). Prints a Markdown table; writes nothing else.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from runs import convert_each, int8_settings, print_table, speed_cells

from optkit.recipe import QuantizeDynamicPass, load_recipe

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_models" / "ner-minilm"


def fixed(common: dict, name: str, **settings):
    """ner-int8 with the search off and the given quantize_dynamic settings (what a user without
    the search would pick by hand)."""
    recipe = load_recipe("ner-int8", common)
    recipe.passes = [
        p.model_copy(update={"search": "off", **settings}) if isinstance(p, QuantizeDynamicPass) else p
        for p in recipe.passes
    ]
    recipe.name = name
    return recipe


def renamed(recipe, name: str):
    """``recipe`` under another name (each row writes its own output folder)."""
    recipe.name = name
    return recipe


def variants(iterations: int, threads: int):
    """(label, Recipe) pairs: the built-ins, hand-picked int8 settings, and the strict-gate search."""
    common = {"benchmark.iterations": iterations, "runtime.threads": threads, "benchmark.batch_sizes": [1, 8]}
    strict = {**common, "validation.gates.1.min": 0.997}
    return [
        ("fp32 (export+simplify+fuse)", load_recipe("fp32", common)),
        ("int8 per-tensor QInt8 (common default)", fixed(common, "ner-int8-per-tensor", per_channel=False)),
        ("int8 per-channel QInt8", fixed(common, "ner-int8-per-channel", per_channel=True)),
        ("ner-int8 (search, tag agreement ≥ 0.99)", load_recipe("ner-int8", common)),
        ("ner-int8 strict (search, tag agreement ≥ 0.997)", renamed(load_recipe("ner-int8", strict), "strict")),
        ("ner-fp16 (keep_io_types)", load_recipe("ner-fp16", common)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, default=SAMPLE / "model.pt", help="TorchScript NER model")
    parser.add_argument("--data", type=Path, default=SAMPLE / "data" / "test.conll", help="CoNLL test split")
    args = parser.parse_args()

    def row(label, result, out, wall):
        m = result.accuracy.metrics
        size = (out / "model.onnx").stat().st_size / 1e6 if result.approved else float("nan")
        return [
            label,
            f"{m['entity_f1_source']:.2f}",
            f"{m['entity_f1_artifact']:.2f}",
            f"{m['entity_f1_drop']:+.2f}",
            f"{m['tag_agreement']:.4f}",
            *speed_cells(result),
            f"{size:.1f}",
            int8_settings(result),
            "approved" if result.approved else "rejected",
            f"{wall:.0f}",
        ]

    rows = convert_each(args.model, args.data, variants(args.iterations, args.threads), row)
    print_table(
        [
            "artifact",
            "F1 PyTorch",
            "F1 artifact",
            "F1 drop (pts)",
            "tag agreement",
            "PyTorch p50 1×128 (ms)",
            "artifact p50 1×128 (ms)",
            "speed-up 1×128",
            "PyTorch p50 8×128 (ms)",
            "artifact p50 8×128 (ms)",
            "speed-up 8×128",
            "model MB",
            "int8 settings",
            "verdict",
            "convert wall (s)",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
