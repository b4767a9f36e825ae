"""Side by side with the peers' default int8 (issue 13, item 4): PyTorch eager, optkit's artifact,
and the int8 models Olive's and Optimum's default workflows make, timed in one process.

Usage (after ``python sample_models/build_minilm_embeddings.py``; the NER sample is reused as built)::

    python benchmarks/int8_peers.py [--models minilm ner] [--ner-sample DIR] [--minilm-sample DIR]
        [--iterations 20] [--rounds 5] [--threads 2] [--json out.json]

For each model, in one process:

* **PyTorch eager** (the reference): the Hugging Face folder loaded as optkit loads it
  (``optkit.sources.torch_source.load``: transformers' default attention, SDPA), ``torch.no_grad``,
  ``torch.set_num_threads(threads)``.
* **optkit**: the real ``optkit.convert`` of the same folder with ``transformer-int8`` (MiniLM) or
  ``ner-int8`` with the strict gate ``tag_agreement ≥ 0.997`` (NER), on the real data; its
  ``model.onnx`` and the fp32 fallback nodes its manifest lists (``--optkit-artifact`` reuses a
  conversion already made, read from its ``manifest.json``).
* **ORT fp32**: optkit's ``fp32`` recipe (export, simplify, fuse), speed gates off (timed here).
* **per-tensor full int8**, **Olive default int8**, **Optimum default int8 (avx2)**: built by
  ``benchmarks/peer_int8.py`` with ONNX Runtime's own ``optimize_model`` / ``quantize_dynamic``
  and the peers' default settings (cited there and in docs/benchmarks.md).

Accuracy: every model runs over the validation data (256 tweets, or the 240 test tweets of the
NER sample) at ``validation.batch_size``, under both paddings as optkit validates
(``optkit.validation.validate_model``: each gated metric's worse value), compared with PyTorch by
optkit's metrics (pooled cosine, tag agreement, entity F1 drop).

Speed, with the method of optkit's speed gates (``optkit.validation.speed.measure_shape``): PyTorch
and the artifact alternate blocks of ``iterations`` calls for ``rounds`` rounds at 1×128 and 8×128
(real tweets padded to 128); speed-up = PyTorch p50 / artifact p50 with the 95 % expanded-percentile
bootstrap interval over rounds (``optkit.validation.stats.speedup_interval``), rounds in which other
processes needed the cores left out (``optkit.validation.noise``). Real-length throughput:
``optkit.validation.workloads.measure_real_length`` (each batch of ``--real-batch`` padded to its own
longest example, alternating passes over ``--real-batches`` batches). The optkit artifact is also
timed head to head against the per-tensor full-int8 model (same functions, the per-tensor model in
PyTorch's place): the Done-when's "≥ 0.95 ×" figures. Every runner uses ``--threads`` intra-op
threads; never run this under ``nice`` (the script warns).

Prints the Markdown table, then one PASS/FAIL line per Done-when bullet; ``--json`` writes every
figure as well.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peer_int8 import ATTENTION_OPS, PEERS, PER_TENSOR, PeerModel, build
from peers_table import HEADER, Ratio, Row, done_when, markdown, table_rows, to_json

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"

#: per model: recipe, its overrides, the data file inside the sample folder, the HF folder, metrics kept
MODELS: dict[str, dict[str, Any]] = {
    "minilm": {
        "recipe": "transformer-int8",
        "overrides": {},
        "sample": SAMPLES / "minilm-embeddings",
        "data": "sentences.txt",
        "metrics": ("pooled_cosine_mean", "pooled_cosine_min", "nonfinite_outputs"),
    },
    "ner": {
        "recipe": "ner-int8",
        "overrides": {"validation.gates.1.min": 0.997},  # the strict gate of the Done-when
        "sample": SAMPLES / "ner-minilm",
        "data": "data/test.conll",
        "metrics": ("tag_agreement", "entity_f1_drop", "entity_f1_source", "entity_f1_artifact", "nonfinite_outputs"),
    },
}


def say(text: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def context(args: argparse.Namespace) -> dict:
    """When, where and how the run was made: date, commit, machine, load, versions, settings."""
    import onnxruntime
    import torch
    import transformers

    from optkit.artifact.environment import cpu_info

    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    cpu = cpu_info()
    flags = ", ".join(f for f, present in cpu.flags.items() if present)
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "cpu": f"{cpu.model} ({flags or 'no int8 flags'})",
        "cores": cpu.logical_cores,
        "load_average": list(os.getloadavg()),
        "nice": os.nice(0),
        "threads": args.threads,
        "iterations": args.iterations,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "real_batch": args.real_batch,
        "real_batches": args.real_batches,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }


def ratio(estimate: Any, point: float) -> Ratio:
    """A :class:`Ratio` from an ``optkit.validation.stats.RatioEstimate`` (None: the point only)."""
    if estimate is None:
        return Ratio(point)
    return Ratio(estimate.ratio, estimate.ci_low, estimate.ci_high)


def convert(sample: Path, recipe: Any, out: Path, data: Path) -> Any:
    """One ``optkit.convert`` of the sample's HF folder; returns the ConvertResult."""
    import optkit

    start = time.perf_counter()
    result = optkit.convert(sample / "hf", recipe, out, data=str(data))
    say(
        f"  optkit {recipe.name}: {'approved' if result.approved else 'rejected'} ({time.perf_counter() - start:.0f} s)"
    )
    return result


def optkit_artifact(
    args: argparse.Namespace, name: str, spec: dict, workdir: Path, data: Path
) -> tuple[Path | None, Row]:
    """optkit's artifact for ``name``: converted now, or read from ``--optkit-artifact``; returns
    its ``model.onnx`` (None when the conversion was rejected) and its row (no figures yet)."""
    from optkit.recipe import load_recipe

    given = dict(item.split("=", 1) for item in args.optkit_artifact).get(name)
    row = Row(name, "optkit", f"optkit `{spec['recipe']}`" + (" (strict gate)" if name == "ner" else ""))
    if given:
        folder = Path(given)
        manifest = json.loads((folder / "manifest.json").read_text())
        searches = manifest.get("search") or []
        row.notes.append(f"artifact reused from {folder}")
    else:
        recipe = load_recipe(spec["recipe"], {**spec["overrides"], "runtime.threads": args.threads})
        folder = workdir / "optkit"
        result = convert(spec["sample"], recipe, folder, data)
        if not result.approved:
            row.notes.append("rejected: " + "; ".join(g.name for g in result.failed_gates))
            return None, row
        searches = [s.model_dump() for s in result.manifest.search] if result.manifest is not None else []
    row.fp32_nodes = sum(len(s["fp32_nodes"]) for s in searches)
    row.settings = "; ".join(s["settings"] for s in searches) or "—"
    return folder / "model.onnx", row


def fp32_artifact(args: argparse.Namespace, spec: dict, workdir: Path, data: Path) -> Path | None:
    """optkit's ``fp32`` artifact (export, simplify, fuse) with its speed gates off and the pipeline's
    own timing cut short (this script times it); None when rejected."""
    from optkit.recipe import load_recipe

    overrides = {
        "runtime.threads": args.threads,
        "benchmark.gates": [],
        "benchmark.batch_sizes": [1],
        "benchmark.iterations": 3,
        "benchmark.rounds": 5,
        "benchmark.max_rounds": 5,
        "benchmark.budget_s": 0,
        "benchmark.scan_max_batch": None,
        "benchmark.real_length": False,
    }
    result = convert(spec["sample"], load_recipe("fp32", overrides), workdir / "fp32", data)
    return workdir / "fp32" / "model.onnx" if result.approved else None


#: float ops that dynamic int8 quantizes when their weight is a constant (ORT's IntegerOps registry)
FLOAT_WEIGHT_OPS = ("MatMul", "Gemm", "Attention", "EmbedLayerNormalization", "Conv")


def describe(path: Path) -> tuple[int, float, int]:
    """Attention-holding nodes (:data:`ATTENTION_OPS`), size on disk (MB) and the number of
    :data:`FLOAT_WEIGHT_OPS` nodes whose weight (input 1, or 2 for EmbedLayerNormalization) is
    still a float initializer: compute left in float32, whether by fp32 fallback nodes or by an op
    type left out of quantization (the search's ``op types`` stage)."""
    from onnx import TensorProto

    from optkit.onnx_io import load_onnx, op_counts
    from optkit.validation.speed import size_on_disk_mb

    model = load_onnx(path)
    counts = op_counts(model)
    floats = {i.name for i in model.graph.initializer if i.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)}
    left = sum(
        1
        for n in model.graph.node
        if n.op_type in FLOAT_WEIGHT_OPS
        and len(n.input) > (2 if n.op_type == "EmbedLayerNormalization" else 1)
        and n.input[2 if n.op_type == "EmbedLayerNormalization" else 1] in floats
    )
    data = path.with_suffix(".onnx.data")
    return sum(counts.get(op, 0) for op in ATTENTION_OPS), size_on_disk_mb(path, data), left


def time_pair(reference: Any, candidate: Any, vset: Any, args: argparse.Namespace) -> tuple[dict, dict, list[str]]:
    """``reference`` then ``candidate`` in alternating rounds at 1×128, 8×128 and real lengths:
    ``({key: Ratio}, {key: (reference p50 ms, candidate p50 ms)}, notes)``."""
    from optkit.validation.speed import TimingPlan, measure_shape
    from optkit.validation.workloads import measure_real_length

    plan = TimingPlan(warmup=args.warmup, iterations=args.iterations, rounds=args.rounds, max_rounds=args.rounds)
    ratios: dict[str, Ratio] = {}
    p50: dict[str, tuple[float, float]] = {}
    notes: list[str] = []
    for batch in (1, 8):
        key = f"{batch}x128"
        shape = measure_shape(reference, candidate, vset.shaped(batch, 128), batch, 128, plan)
        ratios[key] = ratio(shape.estimate, shape.speedup)
        p50[key] = (shape.source.p50_ms, shape.artifact.p50_ms)
        if shape.contended:
            notes.append(f"{key}: fewer than 3 uncontended rounds (interval over every round)")
    real = measure_real_length(reference, candidate, vset, args.real_batch, args.rounds, args.real_batches)
    ratios["real"] = ratio(real.estimate, real.artifact_throughput / real.source_throughput)
    return ratios, p50, notes


def run_model(name: str, args: argparse.Namespace, workdir: Path) -> list[Row]:
    """Every row of one model (see the module docstring)."""
    from optkit.recipe import load_recipe
    from optkit.runners.ort_runner import OrtRunner
    from optkit.sources.torch_source import load
    from optkit.validation.data import load_validation_set
    from optkit.validation.padding import reference_outputs
    from optkit.validation.validate_model import validate_model

    spec = dict(MODELS[name])
    sample = getattr(args, f"{name}_sample")
    spec["sample"] = sample
    data = sample / spec["data"]
    recipe = load_recipe(spec["recipe"], {**spec["overrides"], "runtime.threads": args.threads})
    val = recipe.validation
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"{name}: loading {sample / 'hf'}")
    source = load(sample / "hf", workdir)
    vset = load_validation_set(str(data), source.info, val.max_samples, val.sequence_length)
    torch_runner = source.runner(args.threads)
    torch_runner.activate()
    reference = reference_outputs(torch_runner, vset, val.batch_size, val.padding)

    say(f"{name}: optkit conversions")
    optkit_path, optkit_row = optkit_artifact(args, name, spec, workdir, data)
    fp32_path = fp32_artifact(args, spec, workdir, data)
    models: list[tuple[Row, Path]] = []
    if optkit_path is not None:
        models.append((optkit_row, optkit_path))
    if fp32_path is not None:
        models.append((Row(name, "fp32", "ORT fp32 (optkit `fp32`: export, simplify, fuse)", settings="—"), fp32_path))
    example = vset.shaped(2, 16)
    say(f"{name}: building the peers' int8 models")
    peers: list[PeerModel] = []
    if fp32_path is not None:
        peers.append(build(PER_TENSOR, source, example, workdir / PER_TENSOR.key, fp32_path))
    peers += [build(recipe_, source, example, workdir / recipe_.key) for recipe_ in PEERS]
    for peer in peers:
        fused = ", ".join(f"{k} {v}" for k, v in peer.fusions.items())
        say(f"  {peer.recipe.key}: {peer.seconds:.0f} s" + (f", fused: {fused}" if fused else ""))
        row = Row(name, peer.recipe.key, peer.recipe.label, settings=peer.recipe.settings(), notes=list(peer.notes))
        models.append((row, peer.path))

    rows = [Row(name, "pytorch", torch_runner.name)]
    runners = {}
    for row, path in models:
        row.attention_ops, row.size_mb, row.float_weight_ops = describe(path)
        runner = OrtRunner(path, args.threads)
        runner.activate()
        runners[row.key] = runner
        checked = validate_model(runner, reference, vset, source.info, val.gates, val.batch_size)
        row.metrics = {k: float(checked.accuracy.metrics[k]) for k in spec["metrics"] if k in checked.accuracy.metrics}
        rows.append(row)
    say(f"{name}: timing {len(models)} models against PyTorch")
    for row in rows[1:]:
        row.speedups, row.p50_ms, notes = time_pair(torch_runner, runners[row.key], vset, args)
        row.notes += notes
        say(f"  {row.key}: " + ", ".join(f"{k} {v.cell()}" for k, v in row.speedups.items()))
    if "optkit" in runners and "per-tensor" in runners:
        say(f"{name}: optkit head to head with the per-tensor full-int8 model")
        rel, _, notes = time_pair(runners["per-tensor"], runners["optkit"], vset, args)
        optkit_row.vs_reference = {k: rel[k] for k in ("1x128", "real")}
        optkit_row.notes += [f"vs per-tensor {n}" for n in notes]
    torch_runner.deactivate()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["minilm", "ner"])
    parser.add_argument("--minilm-sample", type=Path, default=MODELS["minilm"]["sample"], help="built MiniLM sample")
    parser.add_argument("--ner-sample", type=Path, default=MODELS["ner"]["sample"], help="built NER sample folder")
    parser.add_argument(
        "--optkit-artifact",
        action="append",
        default=[],
        metavar="MODEL=DIR",
        help="reuse an optkit artifact folder for MODEL (minilm or ner) instead of converting",
    )
    parser.add_argument("--iterations", type=int, default=20, help="timed calls per block")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (>= 3 for an interval)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before a runner's first block")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of every runner")
    parser.add_argument("--real-batch", type=int, default=8, help="batch size of the real-length throughput")
    parser.add_argument("--real-batches", type=int, default=32, help="real batches per pass")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if os.nice(0) > 0:
        say(f"warning: running at nice {os.nice(0)}: speed figures are not comparable (run without nice)")
    info = context(args)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="int8-peers-") as tmp:
        for name in args.models:
            rows += run_model(name, args, Path(tmp) / name)
    info["load_average_after"] = list(os.getloadavg())
    checks = done_when(rows)
    print(
        f"Measured {info['date_utc']}, commit {info['commit']}, {info['cpu']} ({info['cores']} cores), "
        f"{args.threads} threads, load average {info['load_average'][0]:.2f} before / "
        f"{info['load_average_after'][0]:.2f} after; {args.rounds} rounds × {args.iterations} calls; "
        f"speed-ups vs PyTorch with 95 % intervals."
    )
    print()
    print(markdown(HEADER, table_rows(rows)))
    print()
    for row in rows:
        for note in row.notes:
            print(f"- {row.model} {row.key}: {note}")
    print()
    for check in checks:
        print(check.line())
    if args.json:
        args.json.write_text(json.dumps(to_json(rows, checks, info), indent=2))


if __name__ == "__main__":
    main()
