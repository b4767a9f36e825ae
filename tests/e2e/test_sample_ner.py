"""End to end: the real CLI on the real NER sample model (MiniLM-L6 fine-tuned on tweets NER).

The sample is built (or found up to date) by ``sample_models/build_ner_minilm.py``. These tests
assert the manifest's gates and the exit codes; the speed figures themselves are reported by
``benchmarks/ner_sample.py``. Assertions on a measured speed-up are marked ``speed`` and deselected
by default (timed assertions are flaky on loaded machines): ``python -m pytest -m speed tests/e2e``;
the default variant runs the same conversion with ``benchmark.gates=[]``.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests_support import UNTIMED_ARGS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_models" / "ner-minilm"

pytestmark = pytest.mark.e2e

#: a run with its speed gates (only under ``-m speed``) or without them, short-timed (by default)
TIMED = [pytest.param(False, id="accuracy"), pytest.param(True, id="speed", marks=pytest.mark.speed)]


@pytest.fixture(scope="session")
def sample() -> Path:
    """Build the sample if needed (cached by the script's hash)."""
    subprocess.run([sys.executable, str(ROOT / "sample_models" / "build_ner_minilm.py")], check=True, timeout=1800)
    return SAMPLE


@functools.cache
def cuda_here() -> bool:
    """Whether this onnxruntime has the CUDA execution provider (asked in a child process)."""
    providers = subprocess.run(
        [sys.executable, "-c", "import onnxruntime as o; print(o.get_available_providers())"],
        capture_output=True,
        text=True,
    ).stdout
    return "CUDAExecutionProvider" in providers


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optkit.cli.app", *args], capture_output=True, text=True, timeout=900, cwd=ROOT
    )


@pytest.fixture(scope="session", params=TIMED)
def int8_run(sample, tmp_path_factory, request):
    out = tmp_path_factory.mktemp("e2e") / "ner-int8"
    untimed = [] if request.param else UNTIMED_ARGS
    done = run_cli(
        "convert",
        str(sample / "model.pt"),
        "--recipe",
        "ner-int8",
        "--data",
        str(sample / "data" / "test.conll"),
        "-o",
        str(out),
        "--json",
        *untimed,
    )
    return done, out, request.param


def test_ner_int8_is_approved_with_real_gates(int8_run):
    done, out, timed = int8_run
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == {k: v for k, v in json.loads(done.stdout).items() if k not in ("output_dir",)}
    gates = {g["metric"]: g for g in manifest["gates"]}
    assert gates["tag_agreement"]["status"] == "passed" and gates["tag_agreement"]["value"] >= 0.99
    assert gates["entity_f1_drop"]["status"] == "passed" and gates["entity_f1_drop"]["value"] <= 1.0
    if timed:
        assert gates["speedup"]["status"] == "passed"
    else:
        assert "speedup" not in gates
    assert manifest["data"]["kind"] == "conll" and manifest["data"]["real"] is True
    assert manifest["accuracy"]["metrics"]["entity_f1_source"] > 10  # a trained model, not noise
    steps = {s["name"]: s for s in manifest["steps"]}
    assert steps["fuse"]["details"]["fusions"]["Attention"] == 6
    assert manifest["source"]["kind"] == "torchscript"
    search = steps["quantize-dynamic"]["details"]["search"]
    chosen = next(c for c in search["candidates"] if c["id"] == search["chosen"])
    assert search["met_gates"] and chosen["passed"] and chosen["quantized_ops"].get("QAttention") == 6
    assert manifest["search"][0]["settings"] == chosen["settings"]
    assert "## Search: quantize-dynamic" in (out / "report.md").read_text()


def test_strict_tag_gate_is_met_by_the_search_or_explained(sample, tmp_path):
    """Tag agreement >= 0.997 (per-channel int8 alone gives ~0.993 here) with no node in fp32:
    per-layer SmoothQuant alphas with inserted Muls on 7-bit per-channel weights reach 0.9971 on
    this CPU kind (AVX2, no VNNI; docs/benchmarks.md). The search space is narrowed to that family
    to bound the time (the default-gate conversion above runs the whole search); on a CPU where it
    falls short the search must still end in a passing model or exit 1 saying why."""
    out = tmp_path / "strict"
    done = run_cli(
        "convert",
        str(sample / "model.pt"),
        "--recipe",
        "ner-int8",
        "--data",
        str(sample / "data" / "test.conll"),
        "-o",
        str(out),
        "--json",
        "--batch-sizes",
        "1",
        "--set",
        "validation.gates.1.min=0.997",
        "--set",
        "passes.2.search_space.weight_types=[qint8]",
        "--set",
        "passes.2.search_space.reduce_range=[true]",
        "--set",
        "passes.2.search_space.smooth_alphas=[per-layer]",
        "--set",
        "passes.2.search_space.smooth_modes=[mul]",
        "--set",
        "passes.2.search_space.static_methods=[]",
        *UNTIMED_ARGS,
    )
    result = json.loads(done.stdout)
    search = next(s for s in result["steps"] if s["name"] == "quantize-dynamic")["details"]["search"]
    chosen = next(c for c in search["candidates"] if c["id"] == search["chosen"])
    assert [c["stage"] for c in search["candidates"]][:3] == ["fp32 input", "settings", "settings"]
    smoothed = [c for c in search["candidates"] if c["stage"] == "smoothed"]
    assert smoothed and all(c["family"] == "dynamic+smooth α=per-layer mul" for c in smoothed)
    if done.returncode == 0:
        assert search["met_gates"] and chosen["passed"] and chosen["metrics"]["tag_agreement"] >= 0.997
        if chosen["stage"] == "smoothed":  # what this CPU kind gives: fully quantized
            assert chosen["fp32_nodes"] == [] and chosen["smooth_alpha"] == "per-layer"
            assert chosen["quantized_ops"].get("QAttention") == 6
            alphas = next(s for s in result["steps"] if s["name"] == "quantize-dynamic")["details"][
                "smooth_layer_alphas"
            ]
            assert len(alphas) == 25 and all(a is None or 0 <= a <= 1 for a in alphas.values())
        else:
            assert chosen["stage"] in ("op types", "node probe", "fp32 fallback")
    else:
        assert done.returncode == 1 and not out.exists()
        assert "no int8 candidate met the accuracy gates" in done.stderr


def test_ner_fp16_approved_with_cuda_speed_gate_skipped_on_cpu(sample, tmp_path):
    out = tmp_path / "ner-fp16"
    done = run_cli(
        "convert",
        str(sample / "model.pt"),
        "--recipe",
        "ner-fp16",
        "--data",
        str(sample / "data" / "test.conll"),
        "-o",
        str(out),
        # without CUDA the recipe's one speed gate is skipped: its CPU timings decide nothing
        *([] if cuda_here() else ["--set", "benchmark.iterations=3", "--set", "benchmark.warmup=1"]),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    gates = {g["metric"]: g for g in manifest["gates"]}
    assert gates["tag_agreement"]["value"] >= 0.999
    speed = gates["speedup"]
    skipped = manifest["speed"]["skipped_devices"]
    if "cuda" in skipped:
        assert speed["status"] == "skipped" and speed["value"] is None
        assert speed["reason"] == skipped["cuda"] and "no CUDA execution provider" in speed["reason"]
    else:  # a CUDA machine measured it (and exit 0 says it held)
        assert speed["status"] == "passed" and speed["value"] >= 1.0
    assert "PASSED" in done.stderr


def test_strict_fails_on_skipped_cuda_gate(sample, tmp_path):
    out = tmp_path / "strict"
    done = run_cli(
        "convert",
        str(sample / "model.pt"),
        "--recipe",
        "ner-fp16",
        "--strict",
        "--data",
        str(sample / "data" / "test.conll"),
        "-o",
        str(out),
        "--batch-sizes",
        "1",
        "--set",
        "validation.max_samples=32",
        "--set",
        "benchmark.iterations=3",
        "--set",
        "benchmark.warmup=1",
    )
    if not cuda_here():
        assert done.returncode == 1 and "FAILED" in done.stderr and not out.exists()
    else:
        assert done.returncode in (0, 1)
