"""An "int8" recipe whose final model has no int8 compute fails unless it allows float32: the op
counts (operator and QDQ formats), the ``int8_compute_ops`` gate, the search's refusal of a
float-only candidate (scripted evaluator, see tests/unit/search/search_fakes.py) and a conversion
that quantizes only the embeddings."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from optkit.recipe import QuantizeDynamicPass
from optkit.search.ort_quantize import quantize
from optkit.validation.gates import evaluate_int8_compute
from optkit.validation.int8_compute import float_compute_ops, int8_compute_ops

sys.path.insert(0, str(Path(__file__).parents[1] / "search"))
from search_fakes import FakeEvaluator, chain, config, context, save  # noqa: E402

DYNAMIC = QuantizeDynamicPass(type="quantize-dynamic")


def _embedding_chain(names: list[str]) -> onnx.ModelProto:
    """``ids (2, 3) int64 -> Gather(table 10 x 8) -> MatMul(w_i) ...``: an embedding then MatMuls."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(10, 8)).astype(np.float32), "table")]
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], name="embed")]
    prev = "e"
    for i, name in enumerate(names):
        inits.append(numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), f"w_{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w_{i}"], [f"h_{i}"], name=name))
        prev = f"h_{i}"
    graph = helper.make_graph(
        nodes,
        "emb",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 3])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [2, 3, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _qdq(consumer: str) -> onnx.ModelProto:
    """``DequantizeLinear(int8 weight) -> <consumer>``: a QDQ pair (MatMul) or int8 storage (Gather)."""
    w = numpy_helper.from_array(np.ones((8, 8), np.int8), "wq")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    nodes = [helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["w"])]
    if consumer in ("MatMul", "half"):
        nodes.append(helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]))
        nodes.append(helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]))
        nodes.append(helper.make_node("MatMul", ["xd" if consumer == "MatMul" else "x", "w"], ["y"]))
        inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])
    else:
        nodes.append(helper.make_node("Gather", ["w", "x"], ["y"]))
        inp = helper.make_tensor_value_info("x", TensorProto.INT64, [2])
    graph = helper.make_graph(
        nodes, "qdq", [inp], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, scale, zero]
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_float_model_has_no_int8_compute_and_its_matmuls_are_named():
    model = chain(["a", "b"])
    assert int8_compute_ops(model) == {} and float_compute_ops(model) == {"MatMul": 2}


def test_dynamic_quantization_counts_matmulinteger(tmp_path):
    path = save(chain(["a", "b"]), tmp_path / "f.onnx")
    quantize(path, tmp_path / "q.onnx", "qint8", True, False, None, [])
    assert int8_compute_ops(onnx.load(str(tmp_path / "q.onnx"))) == {"MatMulInteger": 2}


def test_quantizing_only_the_embedding_is_no_int8_compute(tmp_path):
    path = save(_embedding_chain(["a"]), tmp_path / "f.onnx")
    quantize(path, tmp_path / "q.onnx", "qint8", True, False, ["Gather"], [])
    model = onnx.load(str(tmp_path / "q.onnx"))
    assert any(n.op_type == "DequantizeLinear" for n in model.graph.node)  # the table is int8 ...
    assert int8_compute_ops(model) == {}  # ... but every product is float


def test_qdq_pairs_count_when_both_operands_of_a_matmul_are_dequantized():
    assert int8_compute_ops(_qdq("MatMul")) == {"QDQ MatMul": 1}
    assert int8_compute_ops(_qdq("half")) == {}  # only the weight dequantized: float compute
    assert float_compute_ops(_qdq("half")) == {"MatMul": 1}
    assert int8_compute_ops(_qdq("Gather")) == {}


def test_gate_fails_a_float_model_of_an_int8_recipe_with_a_clear_reason():
    [gate] = evaluate_int8_compute([DYNAMIC], chain(["a", "b"]))
    assert (gate.name, gate.kind, gate.status, gate.value) == ("int8_compute_ops >= 1", "compute", "failed", 0.0)
    assert gate.reason.startswith("no int8 compute left after quantize-dynamic")
    assert "(2 MatMul)" in gate.reason and "quantize-dynamic.search_space.allow_fp32: true" in gate.reason


def test_gate_passes_when_int8_compute_is_left(tmp_path):
    path = save(chain(["a"]), tmp_path / "f.onnx")
    quantize(path, tmp_path / "q.onnx", "qint8", True, False, None, [])
    [gate] = evaluate_int8_compute([DYNAMIC], onnx.load(str(tmp_path / "q.onnx")))
    assert gate.status == "passed" and gate.value == 1.0 and gate.reason == "1 MatMulInteger"


def test_allow_fp32_accepts_a_float_model_and_says_so():
    allowed = QuantizeDynamicPass(type="quantize-dynamic", search_space={"allow_fp32": True})
    [gate] = evaluate_int8_compute([allowed], chain(["a"]))
    assert gate.status == "passed" and gate.threshold == 0 and "allow_fp32: true accepts" in gate.reason


def test_static_pass_has_its_own_flag():
    from optkit.pass_configs.quantize_static import QuantizeStaticPass

    [gate] = evaluate_int8_compute([QuantizeStaticPass(type="quantize-static")], chain(["a"]))
    assert gate.status == "failed" and "quantize-static.allow_fp32: true" in gate.reason
    allowed = QuantizeStaticPass(type="quantize-static", allow_fp32=True)
    assert evaluate_int8_compute([allowed], chain(["a"]))[0].status == "passed"


def test_no_quantize_pass_no_gate():
    from optkit.pass_configs.fuse import FusePass

    assert evaluate_int8_compute([], chain(["a"])) == []
    assert evaluate_int8_compute([FusePass(type="fuse")], chain(["a"])) == []


def _float_matmuls_pass(view) -> tuple[float, float]:
    """Passes only when no MatMul is int8 (the Gather may be)."""
    return (1.0 if not view.int8 else 0.5), 10.0


def test_search_does_not_choose_a_candidate_that_only_quantized_the_embedding(tmp_path, monkeypatch):
    import optkit.search.int8_search as int8_search
    from optkit.search.sensitivity import NodeSensitivity

    monkeypatch.setattr(
        int8_search,
        "rank_nodes",
        lambda model, nodes, *a: [NodeSensitivity(n.name, n.op_type, 1.0, "output") for n in nodes],
    )
    model = save(_embedding_chain(["a", "b"]), tmp_path / "in.onnx")
    outcome = int8_search.search(model, config(), context(tmp_path, FakeEvaluator(_float_matmuls_pass)))
    found = outcome.search.model_dump()
    float_only = [r["id"] for r in found["candidates"] if r["verdict"] == "passed" or r["id"] == found["chosen"]]
    assert found["met_gates"] is False  # the only passing candidates compute in float
    assert any("no int8 compute" in w and "allow_fp32: true" in w for w in outcome.warnings)
    assert float_only  # at least one candidate passed the accuracy gates in float


def test_search_with_allow_fp32_may_choose_a_float_candidate(tmp_path, monkeypatch):
    import optkit.search.int8_search as int8_search

    model = save(_embedding_chain(["a", "b"]), tmp_path / "in.onnx")
    cfg = config(allow_fp32=True, node_fallback=False)
    outcome = int8_search.search(model, cfg, context(tmp_path, FakeEvaluator(_float_matmuls_pass)))
    assert outcome.search.met_gates is True
    assert not any("no int8 compute" in w for w in outcome.warnings)


def test_conversion_that_quantizes_only_the_embeddings_is_not_approved(tiny, tmp_path):
    """ner-int8 with quantize-dynamic limited to Gather: accuracy holds, but no MatMul or Attention
    computes in int8, so the artifact is no int8 model: exit 1 with the gate named."""
    import optkit
    from optkit.errors import GateFailed
    from tests_support import FAST

    overrides = {**FAST, "passes.2.search": "off", "passes.2.op_types": ["Gather"]}
    result = optkit.convert(tiny["pt"], "ner-int8", tmp_path / "out", data=str(tiny["conll"]), overrides=overrides)
    assert not result.approved and not (tmp_path / "out").exists()
    [gate] = [g for g in result.gates if g.kind == "compute"]
    assert gate.status == "failed" and "no int8 compute left after quantize-dynamic" in gate.reason
    assert "int8_compute_ops >= 1" in result.rejections
    [step] = [s for s in result.steps if s.name == "quantize-dynamic"]
    assert step.details["int8_compute_ops"] == {}
    assert result.manifest is not None and any(g.kind == "compute" for g in result.manifest.gates)
    with pytest.raises(GateFailed) as exc:
        result.raise_for_status()
    assert exc.value.exit_code == 1
