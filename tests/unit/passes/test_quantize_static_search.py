"""``optkit convert`` of a tiny ONNX CNN (Conv, depthwise Conv, Gemm) with ``cnn-int8``, whose
quantize-static pass runs the accuracy-aware static int8 search: the candidate table in the
terminal and the manifest, the winning family, the calibration split kept apart from validation."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from optkit.cli.app import app
from optkit.passes.quantize_static import even_batch
from optkit.recipe import load_recipe
from tests_support import FAST
from tiny_cnn_onnx import tiny_cnn

runner = CliRunner()


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-cnn")
    onnx.save(tiny_cnn(), str(folder / "cnn.onnx"))
    rng = np.random.default_rng(0)
    np.savez(folder / "test.npz", x=rng.random((48, 3, 8, 8), dtype=np.float32))
    np.savez(folder / "calibration.npz", x=rng.random((30, 3, 8, 8), dtype=np.float32))  # 2 × 15
    return folder


def _sets() -> list[str]:
    return [item for key, value in FAST.items() for item in ("--set", f"{key}={json.dumps(value)}")]


def test_cnn_int8_searches_static_int8_and_reports_the_winning_family(cnn, tmp_path):
    out = tmp_path / "o"
    args = ["convert", str(cnn / "cnn.onnx"), "--recipe", "cnn-int8", "--data", str(cnn / "test.npz")]
    args += ["--calibration-data", str(cnn / "calibration.npz"), "-o", str(out), *_sets()]
    result = runner.invoke(app, args)
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None
    assert manifest is not None, result.output
    step = next(s for s in manifest["steps"] if s["name"] == "quantize-static")
    search = step["details"]["search"]
    assert search["candidates"][0]["stage"] == "fp32 input"
    assert {c["stage"] for c in search["candidates"][1:]} <= {"static", "fp32 fallback"}
    chosen = next(c for c in search["candidates"] if c["id"] == search["chosen"])
    assert chosen["verdict"] == "chosen" and chosen["quantizer"] == "static"
    assert step["details"]["search_family"].startswith(f"static QDQ {chosen['calibrate_method']}")
    assert step["details"]["calibration"] == str(cnn / "calibration.npz")
    assert chosen["calibration"] == f"{cnn / 'calibration.npz'} (30 samples)"
    assert step["details"]["int8_compute_ops"]
    assert step["details"]["float_outputs"] is True
    assert _output_producer(out / "model.onnx") == "Gemm"  # no Q/DQ pair rounds the scores to 8 bits
    assert "static QDQ" in result.output  # the candidate table in the terminal
    assert result.exit_code == 0, result.output


def test_calibration_batches_are_all_the_same_size():
    # ORT's percentile and entropy calibrators stack the batches: a short last one breaks them
    assert [even_batch(n) for n in (200, 32, 30, 13, 7, 1)] == [10, 16, 15, 13, 7, 1]
    assert even_batch(17) == 1


def test_the_search_runs_only_when_the_recipe_asks_for_it():
    on = load_recipe("cnn-int8").passes[1]
    assert on.type == "quantize-static" and on.search is True
    assert on.search_space.activations == ["asymmetric", "symmetric"]
    off = load_recipe("cnn-int8", {"passes.1.search": False}).passes[1]
    assert off.search is False


def _output_producer(model_path) -> str:
    model = onnx.load(str(model_path))
    produced = {o: n.op_type for n in model.graph.node for o in n.output}
    return produced[model.graph.output[0].name]


def test_the_artifacts_output_stays_float_unless_the_recipe_says_otherwise(cnn, tmp_path):
    """The Gemm's output is the graph output: ORT's QDQ quantizer would round it to 8 bits
    (a Q/DQ pair); ``float_outputs`` (the default) bypasses that pair, searched or not."""
    base = ["convert", str(cnn / "cnn.onnx"), "--recipe", "cnn-int8", "--data", str(cnn / "test.npz")]
    base += ["--calibration-data", str(cnn / "calibration.npz"), *_sets()]
    base += ["--set", "validation.gates.1.min=0", "--set", "passes.1.search=false"]
    found = {}
    for flag in (True, False):
        out = tmp_path / f"o-{flag}"
        result = runner.invoke(app, [*base, "--set", f"passes.1.float_outputs={str(flag).lower()}", "-o", str(out)])
        assert (out / "model.onnx").exists(), result.output
        step = next(
            s for s in json.loads((out / "manifest.json").read_text())["steps"] if s["name"] == "quantize-static"
        )
        found[flag] = (_output_producer(out / "model.onnx"), step["details"]["output_qdq_pairs_bypassed"])
    assert found == {True: ("Gemm", 1), False: ("DequantizeLinear", 0)}
