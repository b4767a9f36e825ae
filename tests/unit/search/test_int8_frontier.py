"""The int8 search reaching for the frontier (issue 13, item 3): fully quantized candidates of every
family (dynamic, smoothed, static, static smoothed) in expected-speed order, the stop at the first
that passes, and an fp32 fallback ordered by each node's measured effect on the recipe's gates.
Scripted scores (search_fakes); ONNX Runtime's quantizers really build the candidates."""

from __future__ import annotations

import pytest
from search_fakes import FakeClock, FakeEvaluator, chain, config, context, pre_ln_chain, save

import optkit.search.int8_search as int8_search
from optkit.search.sensitivity import NodeSensitivity

FAMILIES = {
    "weight_types": ["qint8", "quint8"],
    "per_channel": [True, False],
    "reduce_range": [False],
    "smooth_alphas": [0.5, 0.75],
    "static_methods": ["minmax"],
}
#: unsmoothed settings' scores; each weight type × granularity has one setting here (reduce_range
#: off), so each is a smoothing base, smoothed in expected-speed order whatever its score
UNSMOOTHED = {1: 0.90, 2: 0.97, 7: 0.95, 8: 0.93}


def _smoothed(weight_type, mode=""):
    return [
        ("smoothed", f"dynamic+smooth α={alpha}{mode}", weight_type, per_channel)
        for per_channel in (False, True)
        for alpha in (0.5, 0.75)
    ]


#: one kernel at a time (qint8's U8S8, then quint8's U8U8): its settings, then its smoothed models
EXPECTED = [
    ("fp32 input", "fp32 input", None, None),
    ("settings", "dynamic", "qint8", False),
    ("settings", "dynamic", "qint8", True),
    *_smoothed("qint8"),  # ids 3-6
    ("settings", "dynamic", "quint8", False),  # 7
    ("settings", "dynamic", "quint8", True),
    *_smoothed("quint8"),  # ids 9-12
    ("static", "static minmax", "qint8", True),  # 13
    ("static", "static minmax+smooth α=0.5", "qint8", True),
    ("static", "static minmax+smooth α=0.75", "qint8", True),
]


def _scripted(table):
    """``{id: cosine}`` (latency 4 ms); the fp32 input passes, ids not listed fail at 0.5."""
    return lambda view: (1.0, 20.0) if view.id == 0 else (table.get(view.id, 0.5), 4.0)


def _frontier(tmp_path, rule, lines=None, **space):
    model = save(pre_ln_chain(), tmp_path / "in.onnx")
    fake = FakeEvaluator(rule)
    outcome = int8_search.search(model, config(**{**FAMILIES, **space}), context(tmp_path, fake, lines))
    return outcome, outcome.search.model_dump(), fake


def _rows(found):
    return [(r["stage"], r["family"], r["weight_type"], r["per_channel"]) for r in found["candidates"]]


def _rank(monkeypatch, order):
    asked = []

    def rank(model, nodes, batches, workdir, threads, weight_type, per_channel, reduce_range):
        asked.append(([n.name for n in nodes], weight_type, per_channel, reduce_range))
        return [NodeSensitivity(name, "MatMul", 1.0 - i / 100, "output") for i, name in enumerate(order)]

    monkeypatch.setattr(int8_search, "rank_nodes", rank)
    return asked


# ---------------------------------------------------------------------------- order and stop
def test_fully_quantized_candidates_of_every_family_come_in_expected_speed_order(tmp_path, monkeypatch):
    built = []
    real = int8_search.quantize_static_qdq

    def static(model_path, out, *args):
        built.append(model_path.name)
        return real(model_path, out, *args)

    monkeypatch.setattr(int8_search, "quantize_static_qdq", static)
    lines: list[str] = []
    _, found, fake = _frontier(tmp_path, _scripted(UNSMOOTHED), lines, op_type_subsets=False, node_fallback=False)
    assert _rows(found) == EXPECTED  # 4 + 2 × 2 × 2 + 1 × 3: the documented bound (smooth_modes: fold)
    assert [r["smooth_alpha"] for r in found["candidates"][13:]] == [None, 0.5, 0.75]
    assert {r["smooth_mode"] for r in found["candidates"] if r["stage"] == "smoothed"} == {"fold"}
    assert [r["smooth_mode"] for r in found["candidates"][13:]] == [None, "fold", "fold"]
    assert [v.static for v in fake.scored] == [False] * 13 + [True] * 3  # what was built is what the row says
    # the static candidates quantized the unsmoothed input, then each smoothed model
    assert built[0] == "in.onnx" and "smoothed-a050" in built[1] and "smoothed-a075" in built[2]
    assert sum("smoothing alpha=" in line for line in lines) == 2  # each alpha smoothed once, shared
    assert not list(tmp_path.glob("*smoothed-a*"))  # the smoothed fp32 models are not kept


def test_the_first_fully_quantized_pass_ends_the_search_with_no_fallback_after_it(tmp_path, monkeypatch):
    asked = _rank(monkeypatch, ["a", "b"])
    lines: list[str] = []
    outcome, found, fake = _frontier(tmp_path, _scripted({**UNSMOOTHED, 10: 0.995, 12: 0.999}), lines)
    assert _rows(found) == EXPECTED[:11]  # stops at 10: 12 (more accurate) and static are never built
    assert asked == [] and found["sensitivity"] == [] and found["fallback_base"] is None
    assert found["chosen"] == 10 and found["met_gates"] and fake.retimed == [[0, 10]]
    assert outcome.details["search_family"] == "dynamic+smooth α=0.75"
    assert outcome.details["smooth_alpha"] == 0.75 and outcome.details["weight_type"] == "quint8"
    assert outcome.details["smooth_mode"] == "fold"
    assert "chosen: candidate 10, dynamic+smooth α=0.75" in lines
    assert any(line.startswith("candidate 10 [dynamic+smooth α=0.75]") for line in lines)


def test_smoothing_that_cannot_run_leaves_the_unsmoothed_families(tmp_path, monkeypatch):
    import optkit.search.smoothquant as smoothquant

    def broken(*args, **kwargs):
        raise RuntimeError("activation probe failed\nmore")

    monkeypatch.setattr(smoothquant, "smooth", broken)
    lines: list[str] = []
    _, found, _ = _frontier(tmp_path, _scripted(UNSMOOTHED), lines, op_type_subsets=False, node_fallback=False)
    # no smoothed row, static on the input only
    assert _rows(found) == EXPECTED[:3] + EXPECTED[7:9] + EXPECTED[13:14]
    assert sum("smoothing skipped: RuntimeError: activation probe failed" in line for line in lines) == 1


def test_mul_smoothing_comes_after_every_fold_candidate_and_may_win(tmp_path):
    """``smooth_modes: [fold, mul]``: every fold candidate of a kernel first (free at run time), then
    the same bases and alphas smoothed with inserted Muls (the chain's second MatMul reads a MatMul
    output, which nothing can absorb: only mul smooths it), before the slower kernel's settings.
    The first that passes wins."""
    lines: list[str] = []
    table = {**UNSMOOTHED, 10: 0.995}  # mul, qint8 per-channel, α = 0.75
    outcome, found, _ = _frontier(tmp_path, _scripted(table), lines, smooth_modes=["fold", "mul"])
    rows = found["candidates"]
    assert _rows(found)[:7] == EXPECTED[:7]
    assert _rows(found)[7:] == _smoothed("qint8", " mul")  # stops at 10, before quint8 and static
    assert [r["smooth_mode"] for r in rows[3:]] == ["fold"] * 4 + ["mul"] * 4
    assert rows[10]["settings"] == "qint8, per-channel, smoothed alpha=0.75 with Muls"
    assert found["chosen"] == 10 and outcome.details["smooth_mode"] == "mul"
    assert outcome.details["search_family"] == "dynamic+smooth α=0.75 mul"
    assert any("smoothing alpha=0.75: 2 of 2 layer(s) smoothed (1 through inserted Muls)" in line for line in lines)
    assert not list(tmp_path.glob("*smoothed-a*"))  # neither mode's fp32 models are kept


def test_mul_mode_that_smooths_nothing_new_adds_no_candidates(tmp_path):
    """When every layer is foldable, mul would give the fold model again: no duplicate candidates."""
    model = pre_ln_chain()
    graph = model.graph
    del graph.node[2:]  # x -> LayerNorm -> MatMul "a": the one layer is foldable
    graph.output[0].name = "h_0"
    graph.initializer.pop()  # w_1
    path = save(model, tmp_path / "in.onnx")
    lines: list[str] = []
    space = {**FAMILIES, "smooth_modes": ["fold", "mul"], "static_methods": []}
    outcome = int8_search.search(path, config(**space), context(tmp_path, FakeEvaluator(_scripted({})), lines))
    stages = [c.smooth_mode for c in outcome.search.candidates if c.stage == "smoothed"]
    assert stages == ["fold"] * 8  # 4 bases × 2 alphas, no mul row
    assert any("smoothing alpha=0.5: 1 of 1 layer(s) smoothed (0 through inserted Muls)" in line for line in lines)


# ---------------------------------------------------------------------------- greedy fallback
NAMES = [f"n{i}" for i in range(8)]
ORDER = ["n5", "n2", "n7", "n0", "n1", "n3", "n4", "n6"]  # local sensitivity, most sensitive first


def graded(view):
    """Local sensitivity and the true effect disagree: n5 ranks first locally but barely moves the
    metric; n7 (third) and n0 (fourth) carry it. Passing needs n7 and n0 in fp32."""
    if view.id == 0:
        return 1.0, 20.0
    fp32 = view.fp32
    return 0.97 + 0.012 * ("n7" in fp32) + 0.009 * ("n0" in fp32) + 0.001 * ("n5" in fp32), 1.0 + 0.5 * len(fp32)


def _chain_run(tmp_path, rule, lines=None, **space):
    model = save(chain(NAMES), tmp_path / "in.onnx")
    fake = FakeEvaluator(rule)
    outcome = int8_search.search(model, config(**space), context(tmp_path, fake, lines))
    return outcome, outcome.search.model_dump(), fake


def test_fallback_keeps_the_nodes_with_the_largest_measured_effect_first(tmp_path, monkeypatch):
    _rank(monkeypatch, ORDER)
    outcome, found, fake = _chain_run(tmp_path, graded)
    probes = [r for r in found["candidates"] if r["stage"] == "node probe"]
    assert [r["fp32_nodes"] for r in probes] == [[n] for n in ORDER[:7]]  # the 7 (of 8) a fallback may keep
    assert found["fallback_base"] == 1
    assert found["fallback_order"] == ["n7", "n0", "n5", "n2", "n1", "n3", "n4", "n6"]
    walk = [r["fp32_nodes"] for r in found["candidates"] if r["stage"] == "fp32 fallback"]
    assert walk == [["n7", "n0"]]  # 1 node (n7 alone) was a probe already: not built again
    assert found["fp32_nodes"] == ["n7", "n0"] == outcome.details["nodes_to_exclude"] and found["met_gates"]
    assert outcome.details["search_family"] == "dynamic, fp32 fallback"
    records = {s["node"]: s for s in found["sensitivity"]}
    assert records["n7"]["probe"] == probes[2]["id"]
    assert records["n7"]["margin"] == pytest.approx(-0.8) and records["n7"]["gain"] == pytest.approx(1.2)
    assert records["n2"]["gain"] == pytest.approx(0.0) and records["n6"]["probe"] is None
    assert records["n6"]["gain"] is None


def test_local_sensitivity_alone_keeps_more_nodes_for_the_same_gates(tmp_path, monkeypatch):
    _rank(monkeypatch, ORDER)
    _, found, _ = _chain_run(tmp_path, graded, fallback_probes=0)
    assert not any(r["stage"] == "node probe" for r in found["candidates"])
    assert found["fp32_nodes"] == ORDER[:4]  # n5, n2 carried along with n7, n0
    assert found["fallback_order"] == ORDER and all(s["probe"] is None for s in found["sensitivity"])


def test_node_probes_stop_when_half_of_the_budget_left_is_spent(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(int8_search, "time", clock)
    _rank(monkeypatch, ORDER)
    model = save(chain(NAMES), tmp_path / "in.onnx")
    fake = FakeEvaluator(lambda v: (1.0 if v.id == 0 else 0.9, 1.0), clock=clock, seconds_per_score=10.0)
    lines: list[str] = []
    outcome = int8_search.search(model, config(budget=100.0), context(tmp_path, fake, lines))
    # probes start at t = 20 with 80 s left: they may use 40 s, so 5 of them (t = 20 … 60) start
    probes = [c for c in outcome.search.candidates if c.stage == "node probe"]
    assert [c.fp32_nodes for c in probes] == [[n] for n in ORDER[:5]]
    assert "node probes stopped after 5: half of the budget left was spent" in lines
    assert any(c.stage == "fp32 fallback" for c in outcome.search.candidates)  # the walk still ran


def test_the_fallback_may_start_from_a_smoothed_static_candidate(tmp_path):
    table = {**UNSMOOTHED, 14: 0.98}  # static minmax + smooth 0.5 is the closest fully quantized
    rule = lambda view: (1.0, 20.0) if view.id == 0 else (table.get(view.id, 0.5) if view.id <= 15 else 0.999, 4.0)  # noqa: E731
    outcome, found, _ = _frontier(tmp_path, rule, op_type_subsets=False)
    assert found["fallback_base"] == 14
    chosen = found["candidates"][found["chosen"]]
    assert chosen["family"] == "static minmax+smooth α=0.5, fp32 fallback" and len(chosen["fp32_nodes"]) == 1
    assert chosen["quantizer"] == "static" and outcome.details["smooth_alpha"] == 0.5


# ---------------------------------------------------------------------------- determinism, config
def test_two_runs_give_the_same_table_and_choice(tmp_path):
    table = {**UNSMOOTHED, 14: 0.98}
    rule = lambda view: (1.0, 20.0) if view.id == 0 else (table.get(view.id, 0.5) if view.id <= 15 else 0.999, 4.0)  # noqa: E731
    runs = []
    for name in ("one", "two"):
        _, found, _ = _frontier(tmp_path / name, rule)
        rows = [{k: v for k, v in r.items() if k not in ("seconds", "speedup")} for r in found["candidates"]]
        runs.append((rows, found["chosen"], found["fallback_order"], found["sensitivity"]))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("probes", [-1, 65])
def test_a_fallback_probe_count_out_of_range_is_refused(probes):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="fallback_probes"):
        config(fallback_probes=probes)


def test_per_layer_alphas_are_a_smoothing_candidate_of_each_base(tmp_path):
    """``smooth_alphas: [0.5, per-layer]``: after α 0.5, the base's own per-layer choice (one smoothed
    model per weight setting); it may win, and the step details give the chosen layers' alphas."""
    lines: list[str] = []
    table = {**UNSMOOTHED, 4: 0.995}  # qint8 per-tensor, per-layer
    outcome, found, _ = _frontier(
        tmp_path, _scripted(table), lines, smooth_alphas=[0.5, "per-layer"], static_methods=[]
    )
    rows = found["candidates"]
    assert [(r["family"], r["per_channel"]) for r in rows[3:]] == [
        ("dynamic+smooth α=0.5", False),
        ("dynamic+smooth α=per-layer", False),
    ]
    assert rows[4]["smooth_alpha"] == "per-layer"
    assert rows[4]["settings"] == "qint8, per-tensor, smoothed alpha=per-layer"
    assert found["chosen"] == 4 and outcome.details["smooth_alpha"] == "per-layer"
    alphas = outcome.details["smooth_layer_alphas"]
    assert isinstance(alphas, dict) and list(alphas) == ["y"] and isinstance(alphas["y"], float)
    assert sum("per-layer alphas for qint8 per-tensor fold: 1 layers: α" in line for line in lines) == 1
    assert not list(tmp_path.glob("*smoothed-layers*")) and not list(tmp_path.glob("*alpha-probe*"))


def test_mul_smoothing_tries_per_layer_alphas_on_every_base_before_any_uniform_alpha(tmp_path, monkeypatch):
    """``smooth_modes: [fold, mul]``, ``smooth_alphas: [0.5, per-layer]``: fold keeps the listed order
    per base; mul puts the per-layer models (Muls only where they pay) on every base first, then the
    uniform alpha (a Mul on every layer no producer absorbs), and stops at the first that passes."""
    from optkit.search import smooth_alpha

    def both(model, *args, **kwargs):  # per-layer: the foldable layer and the one a Mul must take
        return smooth_alpha.AlphaChoice(alphas={"y": 0.5, "h_0": 0.5}, errors={})

    monkeypatch.setattr(smooth_alpha, "choose_alphas", both)
    lines: list[str] = []
    table = {1: 0.90, 2: 0.97, 9: 0.995}  # 9: mul, qint8 per-tensor, alpha 0.5
    outcome, found, _ = _frontier(
        tmp_path,
        _scripted(table),
        lines,
        weight_types=["qint8"],
        smooth_alphas=[0.5, "per-layer"],
        smooth_modes=["fold", "mul"],
        static_methods=[],
    )
    smoothed = [
        (r["smooth_mode"], r["smooth_alpha"], r["per_channel"]) for r in found["candidates"] if r["stage"] == "smoothed"
    ]
    assert smoothed == [
        ("fold", 0.5, False),
        ("fold", "per-layer", False),
        ("fold", 0.5, True),
        ("fold", "per-layer", True),
        ("mul", "per-layer", False),
        ("mul", "per-layer", True),
        ("mul", 0.5, False),  # id 9: passes, so the per-channel uniform candidate is never built
    ]
    assert found["chosen"] == 9 and outcome.details["search_family"] == "dynamic+smooth α=0.5 mul"


def test_a_per_layer_choice_that_smooths_nothing_adds_no_candidate(tmp_path, monkeypatch):
    """Every layer best left unsmoothed: the per-layer model would be the unsmoothed one, so no row."""
    from optkit.search import smooth_alpha

    def nothing(model, *args, **kwargs):
        return smooth_alpha.AlphaChoice(alphas={"y": None}, errors={})

    monkeypatch.setattr(smooth_alpha, "choose_alphas", nothing)
    lines: list[str] = []
    _, found, _ = _frontier(tmp_path, _scripted(UNSMOOTHED), lines, smooth_alphas=["per-layer"], static_methods=[])
    assert [r["stage"] for r in found["candidates"]][:6] == ["fp32 input"] + ["settings"] * 4 + ["node probe"]
    assert sum("smoothing alpha=per-layer: 0 of 2 layer(s) smoothed" in line for line in lines) == 4


@pytest.mark.parametrize("alphas", [["auto"], [0.5, "per_layer"]])
def test_an_unknown_alpha_word_is_refused(alphas):
    with pytest.raises(
        ValueError, match=r"invalid alpha '(auto|per_layer)' \(expected numbers in \[0, 1\] or 'per-layer'\)"
    ):
        config(smooth_alphas=alphas)


def test_a_failing_per_layer_probe_leaves_the_uniform_alphas(tmp_path, monkeypatch):
    """The per-layer choice's own probe fails: no per-layer rows, but every uniform alpha still runs."""
    from optkit.search import smooth_alpha

    def broken(*args, **kwargs):
        raise MemoryError("probe too large")

    monkeypatch.setattr(smooth_alpha, "choose_alphas", broken)
    lines: list[str] = []
    _, found, _ = _frontier(
        tmp_path, _scripted(UNSMOOTHED), lines, smooth_alphas=["per-layer", 0.5], static_methods=[], node_fallback=False
    )
    families = [r["family"] for r in found["candidates"] if r["stage"] == "smoothed"]
    assert families == ["dynamic+smooth α=0.5"] * 4  # 4 bases, the uniform alpha each
    assert sum("per-layer alphas skipped: MemoryError: probe too large" in line for line in lines) == 1


def test_a_quoted_number_is_still_an_alpha():
    assert config(smooth_alphas=["0.5", "per-layer"]).search_space.smooth_alphas == [0.5, "per-layer"]
