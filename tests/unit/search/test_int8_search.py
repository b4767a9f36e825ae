"""The int8 search's rules (optkit.search.int8_search) on ``onnx.helper`` graphs with a scripted
evaluator: the order of candidates, tie-breaking, the fp32-fallback bisection, the budget and what
is returned when nothing passes. No torch, no ONNX Runtime session (see search_fakes)."""

from __future__ import annotations

import errno

import pytest
from search_fakes import THRESHOLD, FakeClock, FakeEvaluator, chain, config, context, save, steady

import optkit.search.int8_search as int8_search
from optkit.errors import PassError
from optkit.search.int8_search import RANK_ROUNDS, RULE, TIMER_FLOOR_MS, search
from optkit.search.sensitivity import NodeSensitivity

FOUR_SETTINGS = {"weight_types": ["qint8", "quint8"], "per_channel": [True, False], "reduce_range": [False]}


def _run(tmp_path, rule, names=("a", "b"), cfg=None, lines=None, **fake):
    model = save(chain(list(names)), tmp_path / "in.onnx")
    evaluator = FakeEvaluator(rule, **fake)
    outcome = search(model, cfg or config(), context(tmp_path, evaluator, lines))
    return outcome, outcome.search.model_dump(), evaluator


def _rank(monkeypatch, order):
    """Script the sensitivity ranking (most sensitive first) and record what it was asked."""
    asked = []

    def rank(model, nodes, batches, workdir, threads, weight_type, per_channel, reduce_range):
        asked.append(([n.name for n in nodes], weight_type, per_channel, reduce_range))
        assert sorted(order) == sorted(n.name for n in nodes)  # a ranking holds every node it was given
        return [NodeSensitivity(name, "MatMul", 1.0 - i / 100, "output") for i, name in enumerate(order)]

    monkeypatch.setattr(int8_search, "rank_nodes", rank)
    return asked


def _by_id(table):
    """A rule from ``{candidate id: (cosine, best ms)}``; the fp32 input passes, others not listed fail."""
    return lambda view: table.get(view.id, (1.0, 20.0) if view.id == 0 else (0.5, 20.0))


# ---------------------------------------------------------------------------- order and choice
def test_settings_are_tried_in_expected_speed_order_and_the_first_passing_one_is_chosen(tmp_path):
    # candidate 3 (quint8 per-tensor) passes: quint8 per-channel, slower still, is never tried
    table = {3: (0.999, 10.0)}
    outcome, found, fake = _run(tmp_path, _by_id(table), cfg=config(**FOUR_SETTINGS))
    rows = found["candidates"]
    assert [(r["stage"], r["weight_type"], r["per_channel"]) for r in rows] == [
        ("fp32 input", None, None),
        ("settings", "qint8", False),  # U8S8 per-tensor: the fastest expected
        ("settings", "qint8", True),
        ("settings", "quint8", False),
    ]
    # what the evaluator read from each file is what the row says was built
    assert [(v.weight_type, v.per_channel) for v in fake.scored[1:]] == [
        ("qint8", False),
        ("qint8", True),
        ("quint8", False),
    ]
    assert fake.retimed == [[0, 3]]  # the choice alone, timed against the fp32 input for the record
    assert found["chosen"] == 3 and found["met_gates"] is True
    assert [r["verdict"] for r in rows] == ["reference", "failed", "failed", "chosen"]
    assert outcome.details["weight_type"] == "quint8" and outcome.details["per_channel"] is False
    assert outcome.details["candidates"] == 3 and outcome.warnings == []
    assert outcome.details["search_family"] == "dynamic" and rows[3]["family"] == "dynamic"
    assert outcome.model_path.name == "01-quantize-dynamic-c03.onnx" and outcome.model_path.exists()
    others = [tmp_path / f"01-quantize-dynamic-c{i:02d}.onnx" for i in (1, 2)]
    assert not any(p.exists() for p in others)  # only the chosen model is kept on disk


def test_the_first_passing_setting_wins_even_when_a_later_one_would_be_faster(tmp_path):
    table = {1: (0.995, 10.0), 2: (0.9999, 2.0)}  # 2 never runs: the search stops at 1
    _, found, fake = _run(tmp_path, _by_id(table), cfg=config(**FOUR_SETTINGS))
    assert [r["id"] for r in found["candidates"]] == [0, 1] and found["chosen"] == 1


def test_a_passing_setting_ends_the_search_before_op_types_and_fallback(tmp_path, monkeypatch):
    asked = _rank(monkeypatch, ["a", "b"])
    _, found, _ = _run(tmp_path, _by_id({1: (0.999, 5.0)}))
    assert [r["stage"] for r in found["candidates"]] == ["fp32 input", "settings"]
    assert asked == [] and found["sensitivity"] == []


# The interval ranking decides only between candidates that are not fully quantized: here the node
# probes of an 8-node chain (each keeps one node in fp32), candidates 2 and 3, pass.
PROBES = {"fallback_probes": 2}


def _probed(tmp_path, monkeypatch, table, space=None, **fake):
    """Candidates 2 and 3 (the probes of n5, then n2) score as ``table`` says; 1 fails."""
    _rank(monkeypatch, ORDER)
    return _run(tmp_path, _by_id(table), names=NAMES, cfg=config(**PROBES, **(space or {})), **fake)


def test_candidates_within_the_latency_tolerance_tie_and_the_earliest_wins(tmp_path, monkeypatch):
    # fastest 10.0 ms, tolerance 0.05: slack = 10 * 0.05 + 0.05 = 0.55 ms
    tied = {2: (0.999, 10.5), 3: (0.999, 10.0)}
    assert _probed(tmp_path / "tie", monkeypatch, tied)[1]["chosen"] == 2
    apart = {2: (0.999, 10.6), 3: (0.999, 10.0)}
    assert _probed(tmp_path / "apart", monkeypatch, apart)[1]["chosen"] == 3


def test_the_timer_floor_ties_sub_millisecond_candidates_even_with_zero_tolerance(tmp_path, monkeypatch):
    space = {"latency_tolerance": 0.0}
    within = {2: (0.999, 1.0 + TIMER_FLOOR_MS), 3: (0.999, 1.0)}
    assert _probed(tmp_path / "within", monkeypatch, within, space)[1]["chosen"] == 2
    beyond = {2: (0.999, 1.0 + 2 * TIMER_FLOOR_MS), 3: (0.999, 1.0)}
    assert _probed(tmp_path / "beyond", monkeypatch, beyond, space)[1]["chosen"] == 3


def test_equally_fast_candidates_go_to_the_most_accurate_then_the_earliest(tmp_path, monkeypatch):
    _, found, _ = _probed(tmp_path / "margin", monkeypatch, {2: (0.991, 4.0), 3: (0.9999, 4.0)})
    assert found["chosen"] == 3  # the larger margin
    assert found["ranking"]["tied"] == [2, 3] and found["ranking"]["fastest"] == 2
    _, found, _ = _probed(tmp_path / "equal", monkeypatch, {2: (0.9999, 4.0), 3: (0.9999, 4.0)})
    assert found["chosen"] == 2  # equal margins: the earliest


def test_the_ranking_timing_decides_over_the_scoring_call_and_only_lowers_a_best_time(tmp_path, monkeypatch):
    score = {2: (0.999, 5.0), 3: (0.999, 8.0)}
    timings = {2: steady(9.0), 3: steady(2.0)}
    _, found, fake = _probed(tmp_path, monkeypatch, score, timings=timings)
    rows = {r["id"]: r for r in found["candidates"]}
    assert fake.retimed == [[0, 2, 3]]
    assert rows[2]["best_ms"] == 5.0  # min(5, 9): a slow round does not undo a fast call
    assert rows[3]["best_ms"] == 2.0 and found["chosen"] == 3
    assert rows[3]["speedup"]["ratio"] == pytest.approx(10.0)  # the fp32 input: steady 20 ms
    assert rows[0]["speedup"] is None and rows[1]["speedup"] is None  # reference; a failing one


def test_a_single_passing_candidate_is_timed_against_the_fp32_input_for_its_interval(tmp_path):
    _, found, fake = _run(tmp_path, _by_id({1: (0.999, 5.0)}))
    assert fake.retimed == [[0, 1]] and found["chosen"] == 1
    speedup = found["candidates"][1]["speedup"]
    figures = {"ratio": 4.0, "ci_low": 4.0, "ci_high": 4.0, "rounds": RANK_ROUNDS, "p50_ms": 5.0, "near_tie": True}
    assert speedup == figures
    assert found["ranking"] == {
        "reference": 0,
        "rounds": RANK_ROUNDS,
        "calls_per_block": FakeEvaluator.iterations,
        "fastest": 1,
        "tied": [1],
        "timed": [1],
        "rule": RULE,
    }


def test_a_chosen_candidate_slower_than_the_fp32_input_is_warned_about(tmp_path):
    outcome, found, _ = _run(tmp_path, _by_id({0: (1.0, 2.0), 1: (0.999, 5.0)}))
    assert found["chosen"] == 1 and found["candidates"][1]["speedup"]["ci_high"] == 0.4
    assert [w for w in outcome.warnings if "slower than its fp32 input" in w] == [
        "the int8 model is slower than its fp32 input at 1×8 on this CPU: 0.40× [0.40, 0.40] (int8 kernels gain "
        "little on x86 without VNNI); the speed gates compare it with the source model, not with this fp32 model: "
        "on this machine the fp32 recipe's model may serve better"
    ]


def test_a_chosen_candidate_faster_than_the_fp32_input_gets_no_speed_warning(tmp_path):
    outcome, _, _ = _run(tmp_path, _by_id({1: (0.999, 5.0)}))
    assert not [w for w in outcome.warnings if "slower" in w]


# ---------------------------------------------------------------------------- fp32 fallback
NAMES = [f"n{i}" for i in range(8)]
ORDER = ["n5", "n2", "n7", "n0", "n1", "n3", "n4", "n6"]  # the scripted sensitivity ranking


def _harmful(bad):
    """Passes only when every node of ``bad`` is in fp32 (the fp32 input always passes); each fp32
    node costs 0.5 ms."""
    return lambda view: (0.999 if bad <= view.fp32 or view.id == 0 else 0.9, 1.0 + 0.5 * len(view.fp32))


#: the walk alone (no node probes): the local sensitivity order is the fallback order
WALK = config(fallback_probes=0)


def _fallback(found):
    return [r["fp32_nodes"] for r in found["candidates"] if r["stage"] == "fp32 fallback"]


def test_fallback_doubles_then_bisects_to_the_fewest_fp32_nodes(tmp_path, monkeypatch):
    asked = _rank(monkeypatch, ORDER)
    outcome, found, fake = _run(tmp_path, _harmful({"n5", "n2", "n7"}), names=NAMES, cfg=WALK)
    # 1, 2 fail, 4 passes, then the bisection between 2 and 4 tries 3, which passes
    assert _fallback(found) == [ORDER[:1], ORDER[:2], ORDER[:4], ORDER[:3]]
    assert [v.fp32 for v in fake.scored[2:]] == [set(ORDER[:n]) for n in (1, 2, 4, 3)]  # really kept
    assert found["fp32_nodes"] == ["n5", "n2", "n7"] == outcome.details["nodes_to_exclude"]
    assert found["chosen"] == 5 and found["met_gates"]
    assert asked == [(NAMES, "qint8", True, False)]  # ranked with the settings being rescued
    assert [s["node"] for s in found["sensitivity"]] == ORDER
    assert outcome.details["quantized_ops"]["MatMulInteger"] == 5


def test_fallback_without_a_bisection_when_the_first_node_is_enough(tmp_path, monkeypatch):
    _rank(monkeypatch, ORDER)
    _, found, _ = _run(tmp_path, _harmful({"n5"}), names=NAMES, cfg=WALK)
    assert _fallback(found) == [["n5"]] and found["fp32_nodes"] == ["n5"]


def test_fallback_stops_one_short_of_all_nodes_unless_allow_fp32(tmp_path, monkeypatch):
    _rank(monkeypatch, ORDER)
    _, found, _ = _run(tmp_path, _harmful(set(ORDER[:5])), names=NAMES, cfg=WALK)
    # limit 7 of 8: 1, 2, 4 fail, 7 passes, bisection 5 passes, nothing left between 4 and 5
    assert [len(n) for n in _fallback(found)] == [1, 2, 4, 7, 5]
    assert found["fp32_nodes"] == ORDER[:5]


def test_fallback_that_needs_every_node_fails_and_returns_the_closest(tmp_path, monkeypatch):
    _rank(monkeypatch, ORDER)
    outcome, found, _ = _run(tmp_path, _harmful(set(ORDER)), names=NAMES, cfg=WALK)
    assert [len(n) for n in _fallback(found)] == [1, 2, 4, 7]  # never all 8 without allow_fp32
    assert found["met_gates"] is False and found["chosen"] == 1  # equal margins: the earliest
    assert any("no int8 candidate met the accuracy gates after 5 candidate(s);" in w for w in outcome.warnings)


def test_allow_fp32_falls_back_to_the_input_model_when_no_int8_candidate_passes(tmp_path, monkeypatch):
    _rank(monkeypatch, ORDER)
    model = tmp_path / "in.onnx"
    never = lambda view: (1.0, 20.0) if view.id == 0 else (0.9, 1.0)  # noqa: E731
    outcome, found, _ = _run(tmp_path, never, names=NAMES, cfg=config(allow_fp32=True, fallback_probes=0))
    assert [len(n) for n in _fallback(found)] == [1, 2, 4, 8]  # the limit is every node now
    assert found["chosen"] == 0 and found["met_gates"] is True
    assert outcome.model_path == model and outcome.details["weight_type"] is None
    assert any("search_space.allow_fp32 kept the model in float32" in w for w in outcome.warnings)


def test_allow_fp32_lets_the_fallback_keep_every_node_in_fp32(tmp_path, monkeypatch):
    _rank(monkeypatch, ORDER)
    outcome, found, _ = _run(
        tmp_path, _harmful(set(ORDER)), names=NAMES, cfg=config(allow_fp32=True, fallback_probes=0)
    )
    assert [len(n) for n in _fallback(found)] == [1, 2, 4, 8, 6, 7]  # 8 passes, then 6 and 7 fail
    assert found["fp32_nodes"] == ORDER and found["met_gates"] is True
    assert outcome.details["quantized_ops"] == {}  # nothing int8 left in it
    assert "the chosen candidate has no quantized node" in outcome.warnings[0]


def test_op_type_subsets_use_the_most_accurate_setting_and_fallback_still_runs(tmp_path, monkeypatch):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    asked = _rank(monkeypatch, ["mm", "embed"])
    table = numpy_helper.from_array(np.ones((10, 8), np.float32), "table")
    weight = numpy_helper.from_array(np.eye(8, dtype=np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["e"], name="embed"),
            helper.make_node("MatMul", ["e", "w"], ["y"], name="mm"),
        ],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
        [table, weight],
    )
    model = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "in.onnx")
    scripted = {1: (0.95, 3.0), 2: (0.97, 3.0), 3: (0.97, 3.0), 4: (0.96, 3.0)}  # 2 and 3 tie: 2 is base
    fake = FakeEvaluator(_by_id(scripted))
    found = search(model, config(**FOUR_SETTINGS), context(tmp_path, fake)).search.model_dump()
    subsets = [r for r in found["candidates"] if r["stage"] == "op types"]
    assert [r["op_types"] for r in subsets] == [["MatMul"], ["Gather"]]  # each type left out in turn
    assert {(r["weight_type"], r["per_channel"]) for r in subsets} == {("qint8", True)}  # candidate 2's
    assert {r["family"] for r in subsets} == {"dynamic, op subset"}
    # the one node the fallback may keep in fp32 is measured alone (a node probe) and not built again
    fallback = [r for r in found["candidates"] if r["stage"] in ("node probe", "fp32 fallback")]
    assert [(r["stage"], r["fp32_nodes"]) for r in fallback] == [("node probe", ["mm"])]
    assert asked == [(["embed", "mm"], "qint8", True, False)]  # the base's nodes and settings


# ---------------------------------------------------------------------------- budget
def test_the_budget_stops_the_search_and_reports_what_it_has(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(int8_search, "time", clock)
    lines: list[str] = []
    outcome, found, _ = _run(
        tmp_path,
        _by_id({1: (0.95, 5.0), 2: (0.97, 5.0), 3: (0.999, 1.0)}),
        cfg=config(**FOUR_SETTINGS, budget=25.0),
        lines=lines,
        clock=clock,
        seconds_per_score=10.0,
    )
    # scores at t = 0, 10, 20 start within 25 s; the fourth would start at 30 s
    assert [r["id"] for r in found["candidates"]] == [0, 1, 2]
    assert found["budget_exhausted"] is True and found["elapsed_s"] == 30.0 and found["budget_s"] == 25.0
    assert found["chosen"] == 2 and found["met_gates"] is False  # the closest it has, not the unseen passing one
    assert outcome.warnings[-1] == "search budget of 25 s exhausted after 2 candidate(s)"
    assert "(search budget exhausted)" in outcome.warnings[0]
    assert len([line for line in lines if line.startswith("candidate ")]) == 3


def test_a_budget_of_almost_nothing_still_tries_one_int8_candidate(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(int8_search, "time", clock)
    _rank(monkeypatch, ["a", "b"])
    outcome, found, _ = _run(
        tmp_path,
        _by_id({1: (0.9, 5.0)}),
        cfg=config(**FOUR_SETTINGS, budget=0.001),
        clock=clock,
        seconds_per_score=1.0,
    )
    assert [r["id"] for r in found["candidates"]] == [0, 1]
    assert found["sensitivity"] == []  # no fallback ranking once the budget is spent
    assert found["budget_exhausted"] and found["chosen"] == 1 and not found["met_gates"]
    assert any(
        w.startswith("no int8 candidate met the accuracy gates after 1 candidate(s) (search budget exhausted);")
        and f"cosine_min >= {THRESHOLD} (closest: 0.9)" in w
        for w in outcome.warnings
    )


# ---------------------------------------------------------------------------- nothing passes, errors
def test_nothing_passes_returns_the_largest_margin_with_its_failing_gate(tmp_path):
    table = {1: (0.90, 1.0), 2: (0.98, 9.0), 3: (0.98, 1.0), 4: (0.97, 1.0)}
    space = {**FOUR_SETTINGS, "node_fallback": False}
    outcome, found, fake = _run(tmp_path, _by_id(table), cfg=config(**space))
    assert found["chosen"] == 2 and found["met_gates"] is False  # margin, not speed; 2 before 3
    assert fake.retimed == []
    assert outcome.search.candidates[2].margin == pytest.approx((0.98 - 0.99) / 0.01)
    (warning,) = outcome.warnings
    assert warning.startswith("no int8 candidate met the accuracy gates after 4 candidate(s); failing: ")
    assert "cosine_min >= 0.99 (closest: 0.98)" in warning


def test_a_candidate_the_runtime_rejects_is_an_error_row_and_the_search_goes_on(tmp_path):
    def rule(view):
        if view.weight_type == "qint8" and not view.per_channel:
            raise RuntimeError("ConvInteger not implemented\nsecond line")
        return 0.999, 3.0

    _, found, _ = _run(tmp_path, rule, cfg=config(**FOUR_SETTINGS))
    bad = found["candidates"][1]
    assert bad["verdict"] == "error" and bad["error"] == "RuntimeError: ConvInteger not implemented"
    assert bad["passed"] is False and found["chosen"] == 2


def test_no_candidate_that_can_be_built_or_run_is_a_pass_error(tmp_path):
    def rule(view):
        if view.id:
            raise ValueError("bad model")
        return 1.0, 1.0

    with pytest.raises(PassError, match=r"no int8 candidate could be built or run \(qint8, per-tensor: ValueError"):
        _run(tmp_path, rule, cfg=config(per_channel=[False], node_fallback=False))


def test_a_full_disk_while_scoring_ends_the_search(tmp_path):
    def rule(view):
        if view.id:
            raise OSError(errno.ENOSPC, "No space left on device")
        return 1.0, 1.0

    with pytest.raises(OSError) as raised:
        _run(tmp_path, rule)
    assert raised.value.errno == errno.ENOSPC


def test_without_an_evaluator_the_search_is_a_pass_error(tmp_path):
    from optkit.io_spec import ModelInfo
    from optkit.pass_context import PassContext

    model = save(chain(["a"]), tmp_path / "in.onnx")
    with pytest.raises(PassError, match="needs validation data and accuracy gates"):
        search(model, config(), PassContext(tmp_path, ModelInfo()))


def test_a_model_with_nothing_to_quantize_is_a_pass_error(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = save(helper.make_model(graph), tmp_path / "in.onnx")
    with pytest.raises(PassError, match="nothing to quantize"):
        search(model, config(), context(tmp_path, FakeEvaluator(_by_id({}))))


def test_unnamed_nodes_are_named_in_a_copy_so_they_can_be_kept_in_fp32(tmp_path, monkeypatch):
    _rank(monkeypatch, ["MatMul_1", "MatMul_0"])
    model = save(chain(["", ""], unnamed=True), tmp_path / "in.onnx")
    fake = FakeEvaluator(lambda view: (0.999 if "MatMul_1" in view.fp32 else 0.9, 1.0))
    outcome = search(model, config(), context(tmp_path, fake))
    assert fake.scored[0].fp32 == {"MatMul_0", "MatMul_1"}  # the reference is the named copy
    assert (tmp_path / "01-named.onnx").exists()
    assert outcome.search.fp32_nodes == ["MatMul_1"]
