"""Benchmark the ``cnn-int8`` static int8 search on the Keras MobileNetV2 digits sample: accuracy and
speed of TensorFlow, the fp32 ONNX artifact and the cnn-int8 artifact, measured in one run.

Usage (builds the sample if needed)::

    python benchmarks/cnn_int8.py [--iterations 50] [--rounds 3] [--threads 2]

Two ``optkit convert`` runs (child processes: ``fp32`` and ``cnn-int8`` with the sample's separate
``calibration.npz``) write the artifacts; then this process loads the Keras model (a
``tf.function``, as optkit's TensorFlow runner) and both ONNX files (optkit's ``OrtRunner``: the
same session options as the speed gates) with the same thread count and times them at batch 1 and
32 on the held-out images, round-robin (``--rounds`` rounds of ``--iterations`` calls each, so a
burst of load hits all three alike); p50 over every timed call, and each ratio with the speed
gates' 95 % bootstrap interval over rounds (``optkit.validation.stats.speedup_interval``). Label agreement is each ONNX
model's argmax against TensorFlow's on every test image; accuracy is against the gold labels.
Prints the winning search family and a Markdown table; writes nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_models" / "mobilenet-digits"


def convert(recipe: str, out: Path, calibration: bool, agreement_min: float | None = None) -> dict:
    """Run ``optkit convert`` of the sample with ``recipe`` into ``out``; returns its manifest."""
    cmd = [sys.executable, "-m", "optkit.cli.app", "convert", str(SAMPLE / "model.keras"), "--recipe", recipe]
    cmd += ["--data", str(SAMPLE / "test.npz"), "--batch-sizes", "1,32", "-o", str(out)]
    if calibration:
        cmd += ["--calibration-data", str(SAMPLE / "calibration.npz")]
    if agreement_min is not None:  # cnn-int8's gates: nonfinite_outputs, then label_agreement
        cmd += ["--set", f"validation.gates.1.min={agreement_min}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if not (out / "manifest.json").is_file():
        sys.exit(f"optkit convert --recipe {recipe} wrote no artifact (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return json.loads((out / "manifest.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--label-agreement-min",
        type=float,
        default=None,
        help="cnn-int8's label-agreement gate for this run (default: the recipe's 0.99); a rejected "
        "conversion writes no artifact to time, so a lower gate shows the speed of what the search finds",
    )
    args = parser.parse_args()
    from optkit.validation.stats import MIN_ROUNDS

    if args.rounds < MIN_ROUNDS:  # the bootstrap interval needs them; say so before minutes of timing
        parser.error(f"--rounds must be at least {MIN_ROUNDS} (the bootstrap interval over rounds)")
    subprocess.run(
        [sys.executable, str(ROOT / "sample_models" / "build_mobilenet_digits.py")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory() as tmp:
        manifests = {
            "fp32": convert("fp32", Path(tmp) / "fp32", False),
            "cnn-int8": convert("cnn-int8", Path(tmp) / "cnn-int8", True, args.label_agreement_min),
        }
        step = next(s for s in manifests["cnn-int8"]["steps"] if s["name"] == "quantize-static")
        search = step["details"]["search"]
        print(f"cnn-int8: {len(search['candidates']) - 1} candidate(s), winner: {step['details']['search_family']}")
        for c in search["candidates"]:
            gates = ", ".join(f"{g['name'].split()[0]} {g['value']}" for g in c["gates"])
            print(
                f"  {c['id']:2d} [{c['stage']}] {c['settings']} fp32={len(c['fp32_nodes'])}: {gates} → {c['verdict']}"
            )
        print(f"cnn-int8 approved: {manifests['cnn-int8']['approved']}; fp32 approved: {manifests['fp32']['approved']}")
        table(Path(tmp), args)


def table(tmp: Path, args) -> None:
    """Time TensorFlow, fp32 ONNX and int8 ONNX round-robin in this process and print the table."""
    import keras
    import tensorflow as tf

    from optkit.runners.ort_runner import OrtRunner
    from optkit.validation.stats import speedup_interval

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    data = np.load(SAMPLE / "test.npz")
    x, y = data["X"].astype(np.float32), data["y"]
    model = keras.models.load_model(SAMPLE / "model.keras", compile=False)
    predict = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    runners = {name: OrtRunner(tmp / name / "model.onnx", args.threads) for name in ("fp32", "cnn-int8")}
    for runner in runners.values():
        runner.activate()
    reference = np.concatenate([predict(x[i : i + 32]).numpy() for i in range(0, len(x), 32)]).argmax(1)
    labels = {"TensorFlow": reference}
    for name, runner in runners.items():
        name_in = runner.input_names[0]
        outs = [next(iter(runner.infer({name_in: x[i : i + 32]}).values())) for i in range(0, len(x), 32)]
        labels[name] = np.concatenate(outs).argmax(1)
    # times[model][batch][round]: one block of call times (seconds) per round, models round-robin
    times: dict[str, dict[int, list[list[float]]]] = {n: {1: [], 32: []} for n in labels}
    for batch in (1, 32):
        feeds = x[:batch]
        for number in range(args.rounds):
            for name in labels:
                if name == "TensorFlow":
                    for _ in range(3 if number == 0 else 1):
                        predict(feeds)
                    block = []
                    for _ in range(args.iterations):
                        start = tf.timestamp()
                        predict(feeds).numpy()
                        block.append(float(tf.timestamp() - start))
                else:
                    runner = runners[name]
                    name_in = runner.input_names[0]
                    block = runner.time_calls({name_in: feeds}, 3 if number == 0 else 1, args.iterations)
                times[name][batch].append(block)
    p50 = {n: {b: float(np.median(np.concatenate(t))) * 1e3 for b, t in by.items()} for n, by in times.items()}

    def ratio(base: str, name: str, batch: int) -> str:
        """``base``'s p50 over ``name``'s with the 95 % bootstrap interval over rounds (> 1: faster)."""
        if name == base:
            return "1.00×"
        est = speedup_interval(times[base][batch], times[name][batch])
        return f"{est.ratio:.2f}× [{est.ci_low:.2f}, {est.ci_high:.2f}]"

    header = ["model", "label agreement vs TF", "accuracy vs labels", "p50 b1 (ms)", "p50 b32 (ms)"]
    header += ["vs TF b1", "vs TF b32", "vs fp32 ONNX b1", "vs fp32 ONNX b32"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, shown in (
        ("TensorFlow", "TensorFlow (Keras, tf.function)"),
        ("fp32", "fp32 ONNX"),
        ("cnn-int8", "cnn-int8"),
    ):
        agreement = float((labels[name] == reference).mean())
        row = [shown, f"{agreement:.4f}", f"{float((labels[name] == y).mean()):.4f}"]
        row += [f"{p50[name][1]:.3f}", f"{p50[name][32]:.3f}"]
        row += [ratio("TensorFlow", name, b) for b in (1, 32)]
        row += [ratio("fp32", name, b) for b in (1, 32)]
        print("| " + " | ".join(row) + " |", flush=True)
    calls = f"{args.rounds} rounds × {args.iterations} calls per model and batch"
    print(f"({len(x)} test images; {calls}; {args.threads} threads; [95 % bootstrap interval over rounds])")


if __name__ == "__main__":
    main()
