"""Accuracy-aware int8 search and the fp16 overflow guard, on tiny models with a planted problem."""

from __future__ import annotations

import json

import pytest

import optkit
from optkit.errors import PassError
from optkit.recipe import parse_recipe
from tests_support import FAST
from tiny_quant_models import build

INT8 = """
name: search-test
passes:
  - type: quantize-dynamic
    search: accuracy-aware
    search_space: {weight_types: [qint8, quint8], per_channel: [true, false], reduce_range: [false]}
validation:
  batch_size: 16
  gates:
    - {metric: nonfinite_outputs, max: 0}
    - {metric: cosine_min, min: 0.98}
    - {metric: label_agreement, min: 0.95}
"""

FP16 = """
name: fp16-test
passes:
  - type: fp16
validation:
  gates:
    - {metric: nonfinite_outputs, max: 0}
    - {metric: cosine_min, min: 0.999}
"""


@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    return build(tmp_path_factory.mktemp("outlier"), "outlier")


@pytest.fixture(scope="module")
def overflow(tmp_path_factory):
    return build(tmp_path_factory.mktemp("overflow"), "overflow")


def _search(result):
    step = next(s for s in result.steps if s.name == "quantize-dynamic")
    return step.search


@pytest.fixture(scope="module")
def rescued(outlier, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "rescued"
    return optkit.convert(outlier["pt"], parse_recipe(INT8), out, data=str(outlier["npz"]), overrides=FAST), out


def test_no_setting_survives_the_outlier_so_the_bad_node_is_kept_in_fp32(rescued):
    result, out = rescued
    search = _search(result)
    settings = [c for c in search.candidates if c.stage == "settings"]
    assert len(settings) == 4 and not any(c.passed for c in settings)
    assert search.sensitivity[0].node == search.fp32_nodes[0]  # ranked most sensitive
    assert len(search.fp32_nodes) == 1 and "MatMul" in search.fp32_nodes[0]
    chosen = next(c for c in search.candidates if c.id == search.chosen)
    assert chosen.verdict == "chosen" and chosen.stage in ("node probe", "fp32 fallback") and chosen.passed
    assert chosen.family == "dynamic, fp32 fallback"
    assert chosen.quantized_ops.get("MatMulInteger") == 1  # the good MatMul is still int8
    assert result.approved and search.met_gates


def test_search_is_in_manifest_report_and_console_json(rescued):
    result, out = rescued
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["search"][0]["fp32_nodes"] == _search(result).fp32_nodes
    assert manifest["search"][0]["met_gates"] is True
    report = (out / "report.md").read_text()
    assert "## Search: quantize-dynamic" in report and "Nodes kept in float32" in report
    assert report.count("| chosen") + report.count("**chosen**") >= 1


def test_search_is_deterministic(outlier, rescued, tmp_path):
    first, _ = rescued
    again = optkit.convert(
        outlier["pt"], parse_recipe(INT8), tmp_path / "again", data=str(outlier["npz"]), overrides=FAST
    )
    a, b = _search(first), _search(again)
    assert [c.settings for c in a.candidates] == [c.settings for c in b.candidates]
    assert [c.metrics for c in a.candidates] == [c.metrics for c in b.candidates]
    assert a.fp32_nodes == b.fp32_nodes and a.chosen == b.chosen


def test_nothing_passes_fails_with_the_closest_candidate_and_writes_nothing(outlier, tmp_path):
    out = tmp_path / "never"
    overrides = {
        **FAST,
        "validation.gates": [{"metric": "max_abs_error", "max": 0.0}],
        "passes.0.search_space.node_fallback": False,
    }
    result = optkit.convert(outlier["pt"], parse_recipe(INT8), out, data=str(outlier["npz"]), overrides=overrides)
    assert not result.approved and not out.exists()
    assert not _search(result).met_gates
    assert any("no int8 candidate met the accuracy gates" in w for w in result.warnings)
    assert result.manifest.search[0].met_gates is False


def test_budget_stops_after_the_first_int8_candidate(outlier, tmp_path):
    overrides = {**FAST, "passes.0.search_budget_s": 0.001}
    result = optkit.convert(
        outlier["pt"], parse_recipe(INT8), tmp_path / "budget", data=str(outlier["npz"]), overrides=overrides
    )
    search = _search(result)
    assert search.budget_exhausted and len(search.candidates) == 2  # fp32 reference + one int8
    assert any("budget" in w for w in result.warnings)


def test_fp16_overflow_is_blocked_automatically(overflow, tmp_path):
    result = optkit.convert(
        overflow["pt"], parse_recipe(FP16), tmp_path / "fp16", data=str(overflow["npz"]), overrides=FAST
    )
    step = next(s for s in result.steps if s.name == "fp16")
    assert step.details["auto_blocked"], "the overflowing MatMul must be kept in fp32"
    assert any("MatMul" in n for n in step.details["auto_blocked"])
    assert step.details["overflow_rounds"][0]["offenders"]
    assert result.approved and result.accuracy.metrics["nonfinite_outputs"] == 0


def test_fp16_overflow_without_auto_block_is_an_error_naming_the_node(overflow, tmp_path):
    overrides = {**FAST, "passes.0.auto_block": False}
    with pytest.raises(PassError, match=r"fp16 overflows to Inf/NaN at /MatMul\b"):
        optkit.convert(
            overflow["pt"], parse_recipe(FP16), tmp_path / "raw", data=str(overflow["npz"]), overrides=overrides
        )
    assert not (tmp_path / "raw").exists()


def test_round_trip_casts_between_fp32_nodes_are_removed():
    from onnx import TensorProto, helper

    from optkit.search.fp16_guard import drop_round_trips

    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="producer"),
        helper.make_node("Cast", ["a"], ["a16"], to=TensorProto.FLOAT16, name="a_cast_to_fp16_node"),
        helper.make_node("Cast", ["a16"], ["a32"], to=TensorProto.FLOAT, name="a_cast_to_fp32_node"),
        helper.make_node("Neg", ["a32"], ["y"], name="consumer"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph)
    assert drop_round_trips(model) == 1
    assert [n.name for n in model.graph.node] == ["producer", "consumer"]
    assert list(model.graph.node[1].input) == ["a"]


def test_cli_search_budget_and_candidate_table(outlier, tmp_path):
    from typer.testing import CliRunner

    from optkit.cli.app import app

    recipe = tmp_path / "search.yaml"
    recipe.write_text(INT8)
    sets = [a for k, v in FAST.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    done = CliRunner().invoke(
        app,
        [
            "convert",
            str(outlier["pt"]),
            "--recipe",
            str(recipe),
            "--data",
            str(outlier["npz"]),
            "-o",
            str(tmp_path / "out"),
            "--search-budget",
            "0.001",
            "--json",
            *sets,
        ],
    )
    result = json.loads(done.stdout)
    search = next(s for s in result["steps"] if s["name"] == "quantize-dynamic")["details"]["search"]
    assert search["budget_s"] == 0.001 and search["budget_exhausted"]
    assert result["recipe"]["resolved"]["passes"][0]["search_budget_s"] == 0.001
    assert done.exit_code == 1  # the one int8 candidate tried cannot survive the outlier


def test_fake_quant_follows_onnxruntime_ranges():
    import numpy as np

    from optkit.search.fake_quant import fake_quant_activation, fake_quant_weight

    w = np.random.default_rng(0).normal(size=(64, 8))
    for per_channel in (True, False):
        scale = np.abs(w).max(axis=0 if per_channel else None) / 127
        err = np.abs(fake_quant_weight(w, "qint8", per_channel, False) - w)
        assert np.all(err <= scale / 2 + 1e-12)
    coarse = np.abs(fake_quant_weight(w, "qint8", False, True) - w).max()
    assert coarse > np.abs(fake_quant_weight(w, "qint8", False, False) - w).max()  # 7-bit is coarser
    x = np.linspace(-1.0, 3.0, 101)
    assert np.abs(fake_quant_activation(x) - x).max() <= (4.0 / 255) / 2 + 1e-12
    assert fake_quant_activation(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]  # zero is exact


def test_inputs_the_source_rejects_are_a_data_error(outlier, tmp_path):
    import numpy as np

    from optkit.errors import DataError

    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, 5), np.float32))  # the model takes 16 features
    with pytest.raises(DataError, match=r"rejected the validation inputs \(x \(4, 5\) float32\)"):
        optkit.convert(outlier["pt"], "fp32", tmp_path / "out", data=str(wrong), overrides=FAST)
    assert not (tmp_path / "out").exists()


def test_disk_full_in_a_pass_is_one_line_exit_2(overflow, tmp_path, monkeypatch):
    import errno

    from typer.testing import CliRunner

    import optkit.passes.fp16 as fp16_pass
    from optkit.cli.app import app

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "work.onnx"))

    monkeypatch.setattr(fp16_pass, "save_onnx", full)
    recipe = tmp_path / "fp16.yaml"
    recipe.write_text(FP16)
    done = CliRunner().invoke(
        app,
        [
            "convert",
            str(overflow["pt"]),
            "--recipe",
            str(recipe),
            "--data",
            str(overflow["npz"]),
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert done.exit_code == 2, done.output
    last = done.stderr.strip().splitlines()[-1]  # progress lines come first; the error is one line
    assert last.startswith("output error: no space left on the device") and "hint:" in last
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_only_the_converters_own_cast_pairs_are_removed():
    from onnx import TensorProto, helper

    from optkit.search.fp16_guard import drop_round_trips

    nodes = [
        helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT16, name="user_cast"),
        helper.make_node("Cast", ["f"], ["f32"], to=TensorProto.FLOAT, name="f_cast_to_fp32_node"),
        helper.make_node("Neg", ["f32"], ["y"], name="consumer"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph)
    assert drop_round_trips(model) == 0  # an int64 source must not be wired into a float op
    assert len(model.graph.node) == 3


def test_gemm_is_kept_in_fp32_under_both_names_and_constant_lhs_matmul_is_not_ranked(tmp_path):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from optkit.onnx_io import save_onnx
    from optkit.passes.quantize_dynamic import quantize
    from optkit.search.sensitivity import exclusion_names, quantizable_nodes

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), n) for n in ("w", "b2", "w0")]
    inits.append(numpy_helper.from_array(np.zeros(8, np.float32), "bias"))
    nodes = [
        helper.make_node("Gemm", ["x", "w", "bias"], ["h"], name="dense", transB=1),
        helper.make_node("MatMul", ["w0", "h"], ["y"], name="lhs_const"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert [n.name for n in quantizable_nodes(model, None)] == ["dense"]
    assert exclusion_names(model, ["dense"]) == ["dense", "dense_MatMul"]
    save_onnx(model, tmp_path / "m.onnx")
    assert quantize(tmp_path / "m.onnx", tmp_path / "q.onnx", "qint8", True, False, None, []).get("MatMulInteger")
    kept = quantize(
        tmp_path / "m.onnx", tmp_path / "k.onnx", "qint8", True, False, None, exclusion_names(model, ["dense"])
    )
    assert not kept.get("MatMulInteger") and not kept.get("MatMulIntegerToFloat")
