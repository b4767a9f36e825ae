"""benchmarks/int8_peers.py's pure parts: the table, the Done-when checks on synthetic figures
(benchmarks/peers_table.py) and the peers' cited default settings with the quantizer call
(benchmarks/peer_int8.py, on a tiny ONNX MatMul). No model is converted and nothing is timed."""

from __future__ import annotations

import importlib.util
import inspect
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[3]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


table = _load("peers_table")
peers = _load("peer_int8")
Ratio, Row = table.Ratio, table.Row


def fast(model, key, speed1=2.0, real=1.8, **kw):
    return Row(
        model, key, key, speedups={"1x128": Ratio(speed1, speed1 - 0.1, speed1 + 0.1), "real": Ratio(real)}, **kw
    )


def minilm(cos_min=0.993, nodes=0, vs=None, speed1=2.0, real=1.8):
    return [
        Row("minilm", "pytorch", "PyTorch"),
        fast(
            "minilm",
            "optkit",
            speed1,
            real,
            metrics={"pooled_cosine_mean": 0.997, "pooled_cosine_min": cos_min},
            fp32_nodes=nodes,
            vs_reference=vs or {},
        ),
        fast("minilm", "per-tensor", 2.0, 1.8, metrics={"pooled_cosine_min": 0.90}),
    ]


def ner(agreement=0.998, nodes=0, vs=None):
    return [
        fast(
            "ner",
            "optkit",
            metrics={"tag_agreement": agreement, "entity_f1_drop": 0.1},
            fp32_nodes=nodes,
            vs_reference=vs or {},
        ),
        fast("ner", "per-tensor", metrics={"tag_agreement": 0.99}),
    ]


def lines(rows):
    return [c.line() for c in table.done_when(rows)]


def test_all_done_when_bullets_pass_on_good_figures():
    checks = table.done_when(minilm() + ner())
    assert len(checks) == 8 and all(c.passed for c in checks), lines(minilm() + ner())


@pytest.mark.parametrize(
    ("rows", "failing"),
    [
        (minilm(cos_min=0.9899), "minilm: pooled_cosine_min = 0.9899"),
        (minilm(nodes=8), "minilm: 8 fp32 fallback node(s)"),
        (minilm(speed1=1.8), "minilm: speed-up at 1×128 = 0.90×"),
        (minilm(real=1.6), "minilm: real-length throughput = 0.89×"),
        (ner(agreement=0.9964), "ner: tag_agreement = 0.9964"),
        (ner(nodes=1), "ner: 1 fp32 fallback node(s)"),
    ],
)
def test_each_bullet_fails_on_its_own(rows, failing):
    failed = [c.line() for c in table.done_when(rows) if not c.passed]
    assert len(failed) == 1 and failed[0].startswith(f"FAIL: {failing}"), failed


def test_an_op_type_left_in_float_is_a_fallback_even_with_0_fallback_nodes():
    # measured 2026-12-01: transformer-int8 on MiniLM chose "smoothed, ops=Attention+EmbedLayerNormalization",
    # 0 fp32 nodes but every FFN MatMul left in float32: not the Done-when's "no fp32 fallback"
    rows = minilm()
    rows[1].float_weight_ops = 24
    failed = [c.line() for c in table.done_when(rows) if not c.passed]
    assert failed == [
        "FAIL: minilm: 0 fp32 fallback node(s), but 24 op(s) with float weights left in the model "
        "(need a fully quantized model)"
    ]
    assert table.table_rows(rows)[1][3] == "0 (24 float-weight ops)"
    rows[1].float_weight_ops = 0
    assert all(c.passed for c in table.done_when(rows))


def test_head_to_head_figure_wins_over_the_ratio_of_speed_ups():
    # speed-ups alone say 1.0 (pass); the head-to-head timing says 0.90 with its interval (fail)
    rows = minilm(vs={"1x128": Ratio(0.90, 0.85, 0.94), "real": Ratio(1.01, 0.97, 1.05)})
    failed = [c.line() for c in table.done_when(rows) if not c.passed]
    assert failed == [
        "FAIL: minilm: speed-up at 1×128 = 0.90× [0.85, 0.94] of the per-tensor full-int8 model's (need ≥ 0.95)"
    ]


def test_missing_figures_fail_instead_of_passing():
    assert lines([Row("ner", "per-tensor", "p")]) == ["FAIL: ner: no optkit artifact (conversion rejected or not run)"]
    unknown = [Row("minilm", "optkit", "o", metrics={"pooled_cosine_min": float("nan")})]
    assert [c.passed for c in table.done_when(unknown)] == [False, False, False, False]
    assert "not measured against the per-tensor" in lines(unknown)[2]
    assert "fp32 fallback nodes unknown" in lines(unknown)[1]


def test_a_model_not_run_gets_no_lines():
    assert all(c.text.startswith("ner:") for c in table.done_when(ner()))


def test_relative_is_the_ratio_of_speed_ups_without_a_head_to_head():
    optkit, reference = minilm(speed1=1.9)[1], minilm()[2]
    rel = table.relative(optkit, reference, "1x128")
    assert math.isclose(rel.ratio, 0.95) and rel.low is None
    assert table.relative(optkit, None, "1x128") is None


def test_ratio_cells():
    assert Ratio(1.876, 1.801, 1.954).cell() == "1.88× [1.80, 1.95]"
    assert Ratio(2.0).cell() == "2.00×"


def test_table_cells_and_markdown():
    rows = minilm() + ner()
    rows[0].p50_ms = {}
    rows[1].p50_ms = {"1x128": (44.14, 23.46)}
    rows[1].settings = "a | b"
    cells = table.table_rows(rows)
    assert all(len(c) == len(table.HEADER) for c in cells)
    assert cells[0][2:4] == ["—", "—"] and cells[0][6] == "—"  # PyTorch: no accuracy, no speed-up
    assert cells[1][2] == "pooled cosine mean 0.9970 / min 0.9930"
    assert cells[1][3] == "0" and cells[1][6] == "2.00× [1.90, 2.10]" and cells[1][7] == "—"
    assert cells[1][9] == "44.1 / 23.5"
    assert cells[3][2] == "tag agreement 0.9980, F1 drop +0.10 pts"
    text = table.markdown(table.HEADER, cells).splitlines()
    assert text[1] == "|" + "---|" * len(table.HEADER)
    assert "a \\| b" in text[3] and len(text) == 2 + len(rows)


def test_json_holds_rows_and_checks():
    rows = minilm()
    data = json.loads(json.dumps(table.to_json(rows, table.done_when(rows), {"commit": "abc"})))
    assert data["context"] == {"commit": "abc"}
    assert data["rows"][1]["speedups"]["1x128"] == {"ratio": 2.0, "low": 1.9, "high": 2.1}
    assert [c["passed"] for c in data["done_when"]] == [True, True, True, True]


def test_cited_defaults():
    """The settings docs/benchmarks.md cites (Olive ee6f40f, optimum-onnx 1939f27)."""
    olive, optimum = peers.OLIVE, peers.OPTIMUM_AVX2
    assert (olive.weight_type, olive.per_channel, olive.reduce_range) == ("QInt8", False, False)
    assert (olive.attention, olive.opset, olive.fuse, olive.preprocess) == ("eager", 20, True, True)
    assert olive.extra_options == {"ActivationSymmetric": False, "MatMulConstBOnly": True}
    assert (optimum.weight_type, optimum.per_channel, optimum.reduce_range) == ("QUInt8", False, False)
    assert (optimum.attention, optimum.opset, optimum.fuse, optimum.preprocess) == ("sdpa", 18, False, False)
    assert optimum.extra_options["WeightSymmetric"] is True and optimum.extra_options["MatMulConstBOnly"] is False
    assert olive.settings() == "QInt8, per-tensor, MatMulConstBOnly"
    assert optimum.settings() == "QUInt8, per-tensor"


def test_per_tensor_recipe_is_quantize_dynamic_own_defaults():
    from onnxruntime.quantization import QuantType, quantize_dynamic

    defaults = {k: p.default for k, p in inspect.signature(quantize_dynamic).parameters.items()}
    recipe = peers.PER_TENSOR
    assert QuantType[recipe.weight_type] == defaults["weight_type"]
    assert (recipe.per_channel, recipe.reduce_range) == (defaults["per_channel"], defaults["reduce_range"])
    assert defaults["op_types_to_quantize"] is None  # every IntegerOps op type, as the peers use


def _matmul_model(path: Path) -> None:
    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize(
    ("recipe", "dtype"), [(peers.OLIVE, TensorProto.INT8), (peers.OPTIMUM_AVX2, TensorProto.UINT8)]
)
def test_quantize_uses_the_recipes_weight_type(tmp_path, recipe, dtype):
    _matmul_model(tmp_path / "in.onnx")
    notes = peers.quantize(recipe, tmp_path / "in.onnx", tmp_path / "out.onnx")
    model = onnx.load(str(tmp_path / "out.onnx"))
    assert notes == []
    assert "MatMulInteger" in [n.op_type for n in model.graph.node]
    assert {t.data_type for t in model.graph.initializer if t.name.startswith("w")} >= {dtype}


def test_quantize_reports_a_quantizer_failure(tmp_path):
    (tmp_path / "in.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(Exception):  # noqa: B017 - ORT's own error type, not retried as a typing problem
        peers.quantize(peers.OLIVE, tmp_path / "in.onnx", tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_build_without_export_needs_the_fp32_artifact(tmp_path):
    with pytest.raises(ValueError, match="fp32_artifact"):
        peers.build(peers.PER_TENSOR, source=None, example={}, workdir=tmp_path / "w")


def test_a_failed_pre_processing_keeps_the_model_and_says_so(tmp_path):
    (tmp_path / "in.onnx").write_bytes(b"\x00garbage")
    note = peers.preprocess(tmp_path / "in.onnx", tmp_path / "out.onnx")
    assert note is not None and note.startswith("quant_pre_process failed")


def test_describe_counts_the_float_weight_ops_left_in_a_model(tmp_path):
    """A MatMul with a float weight counts as compute left in float32; after quantize_dynamic it does not."""
    bench = _load("int8_peers")
    _matmul_model(tmp_path / "in.onnx")
    attention, size_mb, left = bench.describe(tmp_path / "in.onnx")
    assert (attention, left) == (0, 1) and size_mb > 0
    peers.quantize(peers.OLIVE, tmp_path / "in.onnx", tmp_path / "out.onnx")
    assert bench.describe(tmp_path / "out.onnx")[2] == 0
