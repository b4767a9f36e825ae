"""The static QDQ candidates of the int8 search: their stage in the table, the calibration split,
ranking against dynamic int8 by the same evaluator, errors as rows, and a deterministic table.
ONNX Runtime's static quantizer really runs (calibration on the chain graph); the scores are scripted."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from search_fakes import FakeEvaluator, chain, config, context, pre_ln_chain, save

import optkit.search.int8_search as int8_search
from optkit.errors import PassError
from optkit.search.int8_search import calibration_split, search

STATIC = {"static_methods": ["minmax", "percentile"]}


def _run(tmp_path, rule, cfg=None, lines=None):
    model = save(chain(["a", "b"]), tmp_path / "in.onnx")
    evaluator = FakeEvaluator(rule)
    outcome = search(model, cfg or config(**STATIC), context(tmp_path, evaluator, lines))
    return outcome, outcome.search.model_dump(), evaluator


def only_static(view):
    """Dynamic candidates fail, static ones pass (and the fp32 input is the reference)."""
    if view.id == 0:
        return 1.0, 20.0
    return (0.999, 6.0) if view.static else (0.9, 4.0)


def test_static_candidates_follow_the_dynamic_ones_one_per_calibrator(tmp_path):
    cfg = config(**STATIC, node_fallback=False)
    outcome, found, fake = _run(tmp_path, lambda v: (1.0, 20.0) if v.id == 0 else (0.9, 4.0), cfg=cfg)
    rows = found["candidates"]
    assert [(r["stage"], r["quantizer"], r["calibrate_method"], r["family"]) for r in rows] == [
        ("fp32 input", None, None, "fp32 input"),
        ("settings", "dynamic", None, "dynamic"),
        ("static", "static", "minmax", "static minmax"),
        ("static", "static", "percentile", "static percentile"),
    ]
    assert [v.static for v in fake.scored] == [False, False, True, True]  # the files really are QDQ
    assert rows[2]["settings"] == "static QDQ minmax, qint8, per-channel"
    assert rows[2]["quantized_ops"]["DequantizeLinear"] >= 2
    assert rows[2]["calibration"] == rows[3]["calibration"] == "validation samples 0, 2 (2 of 4)"


def test_the_first_passing_static_candidate_is_chosen_and_the_next_calibrator_not_tried(tmp_path):
    outcome, found, fake = _run(tmp_path, only_static)
    assert [(r["stage"], r["calibrate_method"]) for r in found["candidates"]] == [
        ("fp32 input", None),
        ("settings", None),
        ("static", "minmax"),
    ]
    assert found["chosen"] == 2 and found["met_gates"] and fake.retimed == [[0, 2]]
    assert outcome.details["quantizer"] == "static" and outcome.details["calibrate_method"] == "minmax"
    assert outcome.details["search_family"] == "static minmax"
    assert any("which the accuracy gates score too" in w for w in outcome.warnings)
    model = onnx.load(str(outcome.model_path))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)


def test_a_passing_static_candidate_settles_the_search_before_op_types_and_fallback(tmp_path):
    _, found, _ = _run(tmp_path, only_static)
    assert not {r["stage"] for r in found["candidates"]} & {"op types", "fp32 fallback"}


def test_a_passing_dynamic_setting_is_chosen_before_any_static_candidate(tmp_path):
    both = lambda view: (1.0, 20.0) if view.id == 0 else ((0.999, 1.0) if view.static else (0.999, 3.0))  # noqa: E731
    outcome, found, fake = _run(tmp_path, both)
    assert fake.retimed == [[0, 1]]  # static comes later in expected-speed order: never built
    assert found["chosen"] == 1 and outcome.details["quantizer"] == "dynamic"
    assert [r["verdict"] for r in found["candidates"]] == ["reference", "chosen"]
    assert not any("accuracy gates score too" in w for w in outcome.warnings)


def test_no_static_methods_means_no_static_rows(tmp_path):
    _, found, _ = _run(tmp_path, only_static, cfg=config(op_type_subsets=False, node_fallback=False))
    assert [r["stage"] for r in found["candidates"]] == ["fp32 input", "settings"]


def test_a_static_quantizer_failure_is_an_error_row_and_the_search_goes_on(tmp_path, monkeypatch):
    calls = []

    def broken(model_path, out, batches, method, per_channel, op_types, nodes):
        calls.append(method)
        if method == "minmax":
            raise PassError("static quantization failed: boom", "hint")
        return real(model_path, out, batches, method, per_channel, op_types, nodes)

    real = int8_search.quantize_static_qdq
    monkeypatch.setattr(int8_search, "quantize_static_qdq", broken)
    _, found, _ = _run(tmp_path, only_static)  # minmax fails to build: percentile is tried next
    rows = {r["calibrate_method"]: r for r in found["candidates"] if r["stage"] == "static"}
    assert rows["minmax"]["verdict"] == "error" and "boom" in rows["minmax"]["error"]
    assert found["chosen"] == rows["percentile"]["id"] and calls == ["minmax", "percentile"]


def test_the_search_with_static_candidates_is_deterministic(tmp_path):
    tables = []
    for run in ("one", "two"):
        folder = tmp_path / run
        _, found, _ = _run(folder, only_static)
        tables.append([{k: v for k, v in r.items() if k != "seconds"} for r in found["candidates"]])
    assert tables[0] == tables[1]


def test_calibration_data_given_is_used_instead_of_the_validation_split(tmp_path):
    data = tmp_path / "calib.npz"
    np.savez(data, x=np.ones((2, 8), np.float32))
    cfg = config(**STATIC, calibration_data=str(data), calibration_samples=2)
    model = save(chain(["a", "b"]), tmp_path / "in.onnx")
    ctx = context(tmp_path, FakeEvaluator(only_static))
    ctx.info.input_names = ["x"]
    outcome = search(model, cfg, ctx)
    static = [r for r in outcome.search.candidates if r.stage == "static"]
    assert {r.calibration for r in static} == {f"{data} (2 samples)"}
    assert not any("accuracy gates score too" in w for w in outcome.warnings)


# ---------------------------------------------------------------------------- the split
def test_calibration_split_takes_every_other_sample_up_to_the_limit():
    feeds = {"x": np.arange(10)[:, None], "m": np.arange(10)[:, None] * 10}
    split, text = calibration_split(feeds, 3)
    assert split["x"][:, 0].tolist() == [0, 2, 4] and split["m"][:, 0].tolist() == [0, 20, 40]
    assert text == "validation samples 0, 2, 4 (3 of 10)"
    split, text = calibration_split(feeds, 100)
    assert split["x"][:, 0].tolist() == [0, 2, 4, 6, 8] and text == "validation samples 0, 2, …, 8 (5 of 10)"


@pytest.mark.parametrize("size", [1, 2])
def test_calibration_split_of_a_tiny_set_keeps_one_sample(size):
    split, _ = calibration_split({"x": np.zeros((size, 3))}, 64)
    assert len(split["x"]) == 1


# ---------------------------------------------------------------------------- smoothing alphas
def _smoothed_run(tmp_path, rule, model=None, **space):
    path = save(model or pre_ln_chain(), tmp_path / "in.onnx")
    evaluator = FakeEvaluator(rule)
    lines: list[str] = []
    cfg = config(smooth_alphas=[0.5, 0.75], op_type_subsets=False, node_fallback=False, **space)
    outcome = search(path, cfg, context(tmp_path, evaluator, lines))
    return outcome, outcome.search.model_dump(), lines


def test_smoothing_alphas_are_tried_in_order_after_a_failing_stage_one_until_one_passes(tmp_path):
    seen = []

    def rule(view):
        seen.append(view.id)
        return (1.0, 20.0) if view.id == 0 else ((0.999, 4.0) if view.id == 3 else (0.9, 4.0))

    outcome, found, lines = _smoothed_run(tmp_path, rule)
    rows = found["candidates"]
    assert [(r["stage"], r["smooth_alpha"]) for r in rows] == [
        ("fp32 input", None),
        ("settings", None),
        ("smoothed", 0.5),
        ("smoothed", 0.75),
    ]
    assert rows[3]["settings"] == "qint8, per-channel, smoothed alpha=0.75"
    assert found["chosen"] == 3 and outcome.details["smooth_alpha"] == 0.75
    names = {t.name for t in onnx.load(str(outcome.model_path)).graph.initializer}
    assert "gamma_smooth" in names and "gamma" not in names  # the smoothed model was quantized
    assert any("smoothing alpha=0.5: 1 of 2 layer(s) smoothed" in line for line in lines)
    assert not list(tmp_path.glob("*smoothed-a*.onnx"))  # the fp32 smoothed models are not kept


def test_a_passing_smoothed_candidate_stops_the_alphas(tmp_path):
    rule = lambda view: (1.0, 20.0) if view.id == 0 else ((0.999, 4.0) if view.id == 2 else (0.9, 4.0))  # noqa: E731
    _, found, _ = _smoothed_run(tmp_path, rule)
    assert [r["smooth_alpha"] for r in found["candidates"] if r["stage"] == "smoothed"] == [0.5]


def test_no_smoothing_when_a_stage_one_setting_passes_or_nothing_can_absorb(tmp_path):
    passes = lambda view: (0.999, 4.0)  # noqa: E731
    _, found, _ = _smoothed_run(tmp_path / "passes", passes)
    assert "smoothed" not in {r["stage"] for r in found["candidates"]}
    fails = lambda view: (1.0, 20.0) if view.id == 0 else (0.9, 4.0)  # noqa: E731
    _, found, lines = _smoothed_run(tmp_path / "chain", fails, model=chain(["a", "b"]))
    assert "smoothed" not in {r["stage"] for r in found["candidates"]}
    assert any("0 of 2 layer(s) smoothed" in line for line in lines)


def test_a_smoothing_alpha_outside_zero_one_is_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="alpha must be in"):
        config(smooth_alphas=[0.5, 1.2])
