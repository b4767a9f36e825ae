"""The same source and recipe give a byte-identical model.onnx, for every exporter that is cheap to
run twice here (the tiny PyTorch model's check lives in test_pipeline.py). Each run is a fresh
process with another hash seed, so set/dict ordering or per-process counters would show."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from optkit.hashing import sha256_file

FAST_FLAGS = [
    "--batch-sizes",
    "1",
    "--set",
    "benchmark.iterations=3",
    "--set",
    "benchmark.warmup=1",
    "--set",
    "benchmark.gates=[]",
]


@pytest.mark.parametrize("key", ["skops", "onnx"])
def test_scikit_learn_and_onnx_sources_give_byte_identical_models(tiny_sklearn, tmp_path, key):
    hashes = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "optkit.cli.app",
                "convert",
                str(tiny_sklearn[key]),
                "--recipe",
                "sklearn-fp32",
                "--data",
                str(tiny_sklearn["npz"]),
                "-o",
                str(out),
                *FAST_FLAGS,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        hashes.append(sha256_file(out / "model.onnx"))
    assert hashes[0] == hashes[1]
    if key == "onnx":  # a copy: the very bytes the user gave (the same protobuf, serialized again)
        assert hashes[0] == sha256_file(tiny_sklearn["onnx"])
