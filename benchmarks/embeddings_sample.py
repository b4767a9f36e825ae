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
import tempfile
import time
from pathlib import Path

import optkit
from optkit.recipe import QuantizeDynamicPass, load_recipe

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_models" / "minilm-embeddings"


def fixed(common: dict, name: str, **settings):
    """transformer-int8 with the search off and the given quantize_dynamic settings."""
    recipe = load_recipe("transformer-int8", common)
    recipe.passes = [p.model_copy(update={"search": "off", **settings}) if isinstance(p, QuantizeDynamicPass) else p
                     for p in recipe.passes]
    recipe.name = name
    return recipe


def variants(iterations: int, threads: int):
    common = {"benchmark.iterations": iterations, "benchmark.threads": threads, "benchmark.batch_sizes": [1, 8]}
    return [("fp32 (export+simplify+fuse)", load_recipe("fp32", {**common, "validation.gates": [
                {"metric": "pooled_cosine_min", "min": 0.99}]})),
            ("int8 per-tensor QInt8 (common default)", fixed(common, "int8-per-tensor", per_channel=False)),
            ("int8 per-channel QInt8", fixed(common, "int8-per-channel", per_channel=True)),
            ("transformer-int8 (accuracy-aware search)", load_recipe("transformer-int8", common))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", type=Path, default=SAMPLE / "hf", help="HF model folder")
    parser.add_argument("--data", type=Path, default=SAMPLE / "sentences.txt", help="one sentence per line")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, recipe in variants(args.iterations, args.threads):
            start = time.perf_counter()
            result = optkit.convert(args.model, recipe, Path(tmp) / recipe.name, data=str(args.data))
            wall = time.perf_counter() - start
            m = result.accuracy.metrics
            shapes = {(s.batch_size, s.sequence_length): s for s in result.speed.shapes}
            one, eight = shapes[(1, 128)], shapes[(8, 128)]
            search = result.manifest.get("search") or [{}]
            chosen = search[0].get("settings", "—")
            kept = len(search[0].get("fp32_nodes", []))
            rows.append([label, f"{m['pooled_cosine_mean']:.4f}", f"{m['pooled_cosine_min']:.4f}",
                         f"{one.source.p50_ms:.1f}", f"{one.artifact.p50_ms:.1f}", f"{one.speedup:.2f}×",
                         f"{eight.source.p50_ms:.1f}", f"{eight.artifact.p50_ms:.1f}", f"{eight.speedup:.2f}×",
                         chosen + (f", {kept} node(s) fp32" if kept else ""),
                         "approved" if result.approved else "rejected", f"{wall:.0f}"])
            print(f"done: {label} ({wall:.0f} s)", flush=True)
    header = ["artifact", "pooled cosine mean", "pooled cosine min", "PyTorch p50 1×128 (ms)",
              "artifact p50 1×128 (ms)", "speed-up 1×128", "PyTorch p50 8×128 (ms)", "artifact p50 8×128 (ms)",
              "speed-up 8×128", "int8 settings", "verdict", "convert wall (s)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
