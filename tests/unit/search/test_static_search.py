"""The accuracy-aware static int8 search (``quantize-static`` with ``search: true``): candidate
order, stop at the first passing one, depthwise-first fp32 fallback with as few nodes as the gates
allow, the budget, error rows, and a deterministic table.

ONNX Runtime's static quantizer really runs (QDQ, calibrated on a tiny onnx.helper CNN: Conv,
depthwise Conv, Gemm); the scores are scripted by reading which nodes each candidate file keeps in
float32 and how its activations are encoded, so a test can say exactly what is harmful.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import optkit.search.static_search as static_search
from optkit.errors import PassError
from optkit.io_spec import ModelInfo
from optkit.pass_context import PassContext
from optkit.recipe import QuantizeStaticPass
from optkit.search.evaluator import Score, gate_margin
from optkit.search.sensitivity import NodeSensitivity
from optkit.search.static_search import depthwise_nodes, fallback_order, search
from optkit.validation.accuracy import AccuracyReport
from optkit.validation.gates import GateResult
from tiny_cnn_onnx import tiny_cnn

THRESHOLD = 0.99
NODES = ("conv", "dw", "fc")


@dataclass
class QdqView:
    """What the fake evaluator reads from one candidate file: ``id`` (from ``-cNN.onnx``; 0 = the
    input), ``fp32``: the original nodes whose weight is not dequantized from int8, ``symmetric``:
    the activations' QuantizeLinear zero points are int8, ``per_channel``: a weight scale has more
    than one value."""

    id: int
    fp32: set[str]
    symmetric: bool | None
    per_channel: bool | None


def read_view(path: Path) -> QdqView:
    model = onnx.load(str(path))
    found = re.search(r"-c(\d+)\.onnx$", path.name)
    produced = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    fp32 = {
        n.name
        for n in model.graph.node
        if n.name in NODES and not (n.input[1] in produced and produced[n.input[1]].op_type == "DequantizeLinear")
    }
    quants = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]
    symmetric = per_channel = None
    if quants:
        symmetric = inits[quants[0].input[2]].data_type == TensorProto.INT8
        weight_dq = [
            n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] in produced_inputs(model)
        ]
        per_channel = any(int(np.prod(inits[n.input[1]].dims)) > 1 for n in weight_dq if n.input[1] in inits)
    return QdqView(int(found.group(1)) if found else 0, fp32, symmetric, per_channel)


def produced_inputs(model: onnx.ModelProto) -> set[str]:
    """The weight inputs (index 1) of the original Conv / Gemm nodes."""
    return {n.input[1] for n in model.graph.node if n.name in NODES}


class FakeEvaluator:
    """``score`` / ``latency_feeds`` of ``CandidateEvaluator``; ``rule(view) -> value`` (passes at
    ``>= THRESHOLD``), or raises to make an error row."""

    iterations = 3

    def __init__(
        self, rule: Callable[[QdqView], float], ms: dict[int, float] | None = None, fail_timing: bool = False
    ) -> None:
        self.rule, self.ms, self.fail_timing = rule, ms or {}, fail_timing
        self.latency_feeds = {"x": np.zeros((1, 3, 8, 8), np.float32)}
        self.scored: list[QdqView] = []
        self.timed: list[list[int]] = []

    def time_rounds(self, model_paths: list[Path], rounds: int = 5) -> list[list[list[float]]]:
        """Steady blocks (seconds) at ``ms[id]`` (default 1.5 ms), one per round."""
        ids = [read_view(p).id for p in model_paths]
        self.timed.append(ids)
        if self.fail_timing:
            raise RuntimeError("session gone")
        return [[[self.ms.get(i, 1.5) / 1e3] * self.iterations for _ in range(rounds)] for i in ids]

    def score(self, model_path: Path) -> Score:
        view = read_view(model_path)
        self.scored.append(view)
        value = 1.0 if view.id == 0 else self.rule(view)
        status = "passed" if value >= THRESHOLD else "failed"
        gate = GateResult(
            f"label_agreement >= {THRESHOLD}", "accuracy", "label_agreement", ">=", THRESHOLD, value, status
        )
        report = AccuracyReport(metrics={"label_agreement": value}, samples=8)
        return Score(report, [gate], status == "passed", gate_margin(gate), 2.0, 1.5)


class Validation:
    """``ctx.validation``: 8 images for the sensitivity ranking."""

    feeds = {"x": np.random.default_rng(1).random((8, 3, 8, 8), dtype=np.float32)}

    def batches(self, size: int) -> list[dict[str, np.ndarray]]:
        return [{"x": self.feeds["x"][:size]}]


def config(**space) -> QuantizeStaticPass:
    budget = space.pop("budget", 900.0)
    return QuantizeStaticPass(type="quantize-static", search=True, search_space=space, search_budget_s=budget)


def batches() -> list[dict[str, np.ndarray]]:
    return [{"x": np.random.default_rng(2).random((8, 3, 8, 8), dtype=np.float32)}]


def run(tmp_path, rule, cfg=None, lines=None, evaluator=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = tmp_path / "in.onnx"
    onnx.save(tiny_cnn(), str(model))
    evaluator = evaluator or FakeEvaluator(rule)
    sink = lines if lines is not None else []
    ctx = PassContext(tmp_path, ModelInfo(), validation=Validation(), evaluator=evaluator, progress=sink.append)
    outcome = search(model, cfg or config(), ctx, batches(), "calib.npz (8 samples)")
    return outcome, outcome.search.model_dump(), evaluator


def settings(rows) -> list[tuple]:
    return [
        (r["stage"], r["activations"], r["per_channel"], r["reduce_range"], r["calibrate_method"], r["fp32_nodes"])
        for r in rows
    ]


def never(view: QdqView) -> float:
    return 0.5


# --------------------------------------------------------------------------- order and stop
def test_candidates_are_tried_fastest_and_simplest_first(tmp_path):
    outcome, found, fake = run(tmp_path, never, config(node_fallback=False))
    expected = [("fp32 input", None, None, None, None, [])] + [
        ("static", acts, pc, rr, method, [])
        for acts in ("asymmetric", "symmetric")
        for pc in (True, False)
        for rr in (False, True)
        for method in ("minmax", "percentile", "entropy")
    ]
    assert settings(found["candidates"]) == expected
    # the files really hold what the rows say
    assert [(v.symmetric, v.per_channel) for v in fake.scored[1:]] == [
        (acts == "symmetric", pc) for _, acts, pc, _, _, _ in expected[1:]
    ]
    assert all(v.fp32 == set() for v in fake.scored[1:])  # fully quantized
    assert not found["met_gates"]
    assert any("no static int8 candidate met the accuracy gates" in w for w in outcome.warnings)


def test_the_search_stops_at_the_first_passing_candidate(tmp_path):
    lines: list[str] = []
    outcome, found, _ = run(tmp_path, lambda v: 0.995 if v.symmetric else 0.9, lines=lines)
    rows = found["candidates"]
    assert len(rows) == 14  # fp32 input, twelve asymmetric, the first symmetric
    assert found["chosen"] == 13 and found["met_gates"]
    assert rows[13]["verdict"] == "chosen" and rows[13]["settings"].endswith("symmetric activations")
    assert not {r["stage"] for r in rows} & {"fp32 fallback"}
    assert outcome.details["search_family"] == (
        "static QDQ minmax, per-channel weights, symmetric qint8 activations, fully quantized"
    )
    assert outcome.details["activation_type"] == "qint8" and outcome.details["calibrate_method"] == "minmax"
    assert any(line.startswith("chosen: candidate 13") for line in lines)
    model = onnx.load(str(outcome.model_path))
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) > 0
    # the other candidates' files were removed
    assert sorted(p.name for p in tmp_path.glob("*quantize-static-c*")) == [outcome.model_path.name]


def test_the_search_order_follows_the_search_space(tmp_path):
    cfg = config(activations=["symmetric"], per_channel=[False], reduce_range=[True], calibrate_methods=["entropy"])
    _, found, _ = run(tmp_path, lambda v: 0.995, cfg)
    assert settings(found["candidates"]) == [
        ("fp32 input", None, None, None, None, []),
        ("static", "symmetric", False, True, "entropy", []),
    ]
    assert (
        found["candidates"][1]["settings"]
        == "static QDQ entropy, qint8, per-tensor, symmetric activations, reduce_range"
    )


# --------------------------------------------------------------------------- fp32 fallback
def test_depthwise_convolutions_go_back_to_fp32_first(tmp_path, monkeypatch):
    # the measured ranking puts the Gemm first; the depthwise Conv still goes first
    monkeypatch.setattr(
        static_search,
        "rank_nodes",
        lambda *a, **k: [
            NodeSensitivity("fc", "Gemm", 0.5, "output"),
            NodeSensitivity("conv", "Conv", 0.2, "weight"),
            NodeSensitivity("dw", "Conv", 0.1, "weight"),
        ],
    )
    outcome, found, _ = run(tmp_path, lambda v: 0.995 if "dw" in v.fp32 else 0.9, config(activations=["asymmetric"]))
    rows = found["candidates"]
    fallback = [r for r in rows if r["stage"] == "fp32 fallback"]
    assert [r["fp32_nodes"] for r in fallback] == [["dw"]]
    assert found["chosen"] == fallback[0]["id"] and found["fp32_nodes"] == ["dw"]
    assert outcome.details["nodes_to_exclude"] == ["dw"]
    assert outcome.details["search_family"].endswith("1 node(s) in fp32")
    assert [s["node"] for s in found["sensitivity"]] == ["fc", "conv", "dw"]


def test_fallback_keeps_as_few_nodes_in_fp32_as_the_gates_allow(tmp_path):
    # real sensitivity ranking; passing needs the depthwise conv and the first conv in fp32
    outcome, found, fake = run(
        tmp_path, lambda v: 0.995 if {"dw", "conv"} <= v.fp32 else 0.9, config(activations=["asymmetric"])
    )
    fallback = [r for r in found["candidates"] if r["stage"] == "fp32 fallback"]
    assert [len(r["fp32_nodes"]) for r in fallback] == [1, 2]
    assert fallback[0]["fp32_nodes"] == ["dw"]
    assert set(found["fp32_nodes"]) == {"dw", "conv"} and found["met_gates"]
    assert fake.scored[-1].fp32 == {"dw", "conv"}  # the file really keeps them in float32
    # the base of the fallback is the closest full candidate (the first, on equal margins)
    assert fallback[0]["calibrate_method"] == "minmax" and fallback[0]["per_channel"] is True


def test_without_allow_fp32_the_fallback_never_keeps_every_node_in_fp32(tmp_path):
    _, found, _ = run(tmp_path, lambda v: 0.995 if len(v.fp32) == 3 else 0.9, config(activations=["asymmetric"]))
    assert max(len(r["fp32_nodes"]) for r in found["candidates"]) == 2
    assert not found["met_gates"]


def test_fallback_ranking_errors_are_a_pass_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("probe failed")

    monkeypatch.setattr(static_search, "rank_nodes", broken)
    with pytest.raises(PassError, match="node sensitivity analysis failed"):
        run(tmp_path, never, config(activations=["asymmetric"], per_channel=[True], calibrate_methods=["minmax"]))


def test_depthwise_nodes_and_fallback_order():
    model = tiny_cnn()
    assert depthwise_nodes(model) == ["dw"]
    ranking = [NodeSensitivity(n, "Conv", e, "weight") for n, e in [("a", 0.9), ("dw", 0.1), ("b", 0.5)]]
    assert fallback_order(ranking, ["dw"]) == ["dw", "a", "b"]
    grouped = tiny_cnn()
    group = next(a for a in grouped.graph.node[2].attribute if a.name == "group")
    group.i = 2  # group 2 of 8 channels: a grouped convolution, not depthwise
    assert depthwise_nodes(grouped) == []


# --------------------------------------------------------------------------- budget, errors, determinism
def test_the_budget_stops_the_search_after_one_int8_candidate(tmp_path, monkeypatch):
    class Clock:
        now = 0.0

        def perf_counter(self) -> float:
            self.now += 10.0
            return self.now

    monkeypatch.setattr(static_search, "time", Clock())
    outcome, found, _ = run(tmp_path, never, config(budget=1.0))
    assert [r["stage"] for r in found["candidates"]] == ["fp32 input", "static"]
    assert found["budget_exhausted"]
    assert any("search budget of 1 s exhausted" in w for w in outcome.warnings)


def test_a_candidate_the_runtime_rejects_is_an_error_row(tmp_path):
    def rule(view: QdqView) -> float:
        if view.id == 1:
            raise RuntimeError("kernel not implemented")
        return 0.995

    _, found, _ = run(tmp_path, rule)
    rows = found["candidates"]
    assert rows[1]["verdict"] == "error" and "kernel not implemented" in rows[1]["error"]
    assert found["chosen"] == 2


def test_the_search_is_deterministic(tmp_path):
    def rule(view: QdqView) -> float:
        return 0.995 if {"dw"} <= view.fp32 else 0.9

    first = run(tmp_path / "a", rule, config(activations=["asymmetric"]))[1]
    second = run(tmp_path / "b", rule, config(activations=["asymmetric"]))[1]
    drop = ("seconds", "latency_ms", "best_ms", "size_mb")
    assert [{k: v for k, v in r.items() if k not in drop} for r in first["candidates"]] == [
        {k: v for k, v in r.items() if k not in drop} for r in second["candidates"]
    ]
    assert first["chosen"] == second["chosen"] and first["sensitivity"] == second["sensitivity"]


# --------------------------------------------------------------------------- speed vs the fp32 input
def always(view: QdqView) -> float:
    return 1.0


def test_a_chosen_model_slower_than_its_fp32_input_is_timed_and_warned_about(tmp_path):
    """The speed gates compare with the source framework; an int8 model slower than the fp32 ONNX
    it came from (x86 without VNNI) is still chosen, with its measured ratio and a warning."""
    lines: list[str] = []
    fake = FakeEvaluator(always, ms={0: 1.0, 1: 2.0})
    outcome, found, _ = run(tmp_path, always, lines=lines, evaluator=fake)
    assert found["chosen"] == 1 and fake.timed == [[0, 1]]
    speedup = found["candidates"][1]["speedup"]
    assert speedup["ratio"] == 0.5 and speedup["ci_high"] == 0.5 and speedup["rounds"] == 5
    assert speedup["p50_ms"] == 2.0
    assert [w for w in outcome.warnings if "slower than its fp32 input at 1×3×8×8" in w] == [
        "the int8 model is slower than its fp32 input at 1×3×8×8 on this CPU: 0.50× [0.50, 0.50] (int8 kernels "
        "gain little on x86 without VNNI); the speed gates compare it with the source model, not with this fp32 "
        "model: on this machine the fp32 recipe's model may serve better"
    ]
    assert any(line.startswith("speed-up of candidate 1 over the fp32 input at 1×3×8×8: 0.50×") for line in lines)


def test_a_chosen_model_faster_than_its_fp32_input_gets_no_warning(tmp_path):
    fake = FakeEvaluator(always, ms={0: 3.0, 1: 1.5})
    outcome, found, _ = run(tmp_path, always, evaluator=fake)
    assert found["candidates"][1]["speedup"]["ratio"] == 2.0
    assert not [w for w in outcome.warnings if "slower than its fp32 input" in w]


def test_timing_that_fails_leaves_the_choice_without_a_speed_figure(tmp_path):
    fake = FakeEvaluator(always, fail_timing=True)
    outcome, found, _ = run(tmp_path, always, evaluator=fake)
    assert found["chosen"] == 1 and found["met_gates"] and found["candidates"][1]["speedup"] is None
    assert not [w for w in outcome.warnings if "slower" in w]


def test_nothing_is_timed_when_no_candidate_passes(tmp_path):
    fake = FakeEvaluator(never)
    run(tmp_path, never, config(node_fallback=False), evaluator=fake)
    assert fake.timed == []


def test_the_search_needs_an_evaluator(tmp_path):
    model = tmp_path / "in.onnx"
    onnx.save(tiny_cnn(), str(model))
    with pytest.raises(PassError, match="needs validation data and accuracy gates"):
        search(model, config(), PassContext(tmp_path, ModelInfo()), batches(), "x")


def test_a_model_without_convolutions_or_products_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    ctx = PassContext(tmp_path, ModelInfo(), validation=Validation(), evaluator=FakeEvaluator(never))
    with pytest.raises(PassError, match="nothing to quantize"):
        search(model, config(), ctx, batches(), "x")


def test_the_histogram_calibrators_print_nothing(tmp_path, capfd):
    from optkit.search.ort_static import quantize_static_qdq

    model = tmp_path / "in.onnx"
    onnx.save(tiny_cnn(), str(model))
    capfd.readouterr()
    ops = quantize_static_qdq(model, tmp_path / "q.onnx", batches(), "percentile", True, None, [])
    assert ops["QuantizeLinear"] > 0
    assert "histogram" not in capfd.readouterr().out  # ORT's calibrator print()s its progress
