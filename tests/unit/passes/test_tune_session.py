"""The tune-session search on fake timings: the candidate list, the choice, the budget (no timed
assertions: every latency here is synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from optkit.pass_configs.tune_session import TuneSessionPass
from optkit.passes.tune_session import NO_WIN, candidates, choose, search
from optkit.records.session import GainRecord, SessionCandidate, SessionSettings
from optkit.runners.base import Feeds, Runner
from optkit.validation.noise import NoiseMonitor, NoiseRecord

FEEDS: Feeds = {"x": np.zeros((1, 4), np.float32)}


class FakeRunner(Runner):
    """Returns synthetic call times: ``base_s`` × (1 + noise) with a per-settings seeded RNG."""

    def __init__(self, settings: SessionSettings, base_s: float, noise: float, seed: int, fail: bool = False) -> None:
        super().__init__(settings.intra_op_num_threads)
        self.settings, self.base_s, self.noise, self.fail = settings, base_s, noise, fail
        self.rng = np.random.default_rng(seed)

    def _activate(self) -> None:
        if self.fail:
            raise RuntimeError("this build refuses the option")

    def _infer(self, feeds: Feeds) -> Feeds:
        return feeds

    def _deactivate(self) -> None:
        pass

    def time_calls(self, feeds: Feeds, warmup: int, iterations: int) -> list[float]:
        return list(self.base_s * (1 + self.noise * self.rng.random(iterations)))


def factory(speed: dict[str, float], noise: float = 0.05, fail: tuple[str, ...] = ()):
    """Runners whose latency is 1 ms / speed[label] (1 ms for settings not named)."""
    made: list[SessionSettings] = []

    def make(settings: SessionSettings) -> Runner:
        made.append(settings)
        label = settings.label()
        return FakeRunner(settings, 1e-3 / speed.get(label, 1.0), noise, seed=len(made), fail=label in fail)

    make.made = made  # type: ignore[attr-defined]
    return make


CONFIG = TuneSessionPass(type="tune-session", iterations=10, warmup=0)


class FakeMonitor(NoiseMonitor):
    """Reports a fixed CPU use by other processes instead of reading psutil."""

    def __init__(self, clock, others_cores: float = 0.0) -> None:
        super().__init__(clock)
        self.others = others_cores

    def start(self) -> None:
        pass

    def round_started(self) -> None:
        pass

    def round_done(self) -> bool:  # the tune pass's own busy rule reads the window's figure below
        return False

    def stop(self, source_round_ms, artifact_round_ms) -> NoiseRecord:
        return NoiseRecord(others_cores=self.others)


def quiet(clock) -> NoiseMonitor:
    return FakeMonitor(clock, 0.0)


def busy(clock) -> NoiseMonitor:
    return FakeMonitor(clock, 1.75)


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 8])
def test_no_candidate_uses_more_threads_than_the_run(threads):
    default = SessionSettings.default(threads)
    listed = candidates(default, CONFIG.factors, threads)
    assert listed and all(s.threads_used <= threads for _, s in listed)
    intra = [s.intra_op_num_threads for c, s in listed if c.startswith("intra_op")]
    assert intra == [t for t in (1, 2, 4) if t < threads]
    assert all(s != default for _, s in listed), "a candidate equal to the default measures nothing"


def test_factors_limit_the_candidates():
    listed = candidates(SessionSettings.default(2), ["spinning", "memory_arena"], 2)
    assert [c for c, _ in listed] == ["allow_spinning=0", "enable_cpu_mem_arena=0"]


def gain(low: float | None, high: float | None = None) -> GainRecord:
    return GainRecord(ratio=low, ci_low=low, ci_high=high or low, confidence=0.95, rounds=5)


def cand(change: str, g: GainRecord | None) -> SessionCandidate:
    return SessionCandidate(change=change, settings=SessionSettings.default(2), gain=g)


def test_choose_needs_the_whole_interval_above_one_and_takes_the_highest_lower_bound():
    assert choose([cand("a", gain(0.9, 1.3)), cand("b", gain(1.0, 1.5)), cand("c", None)]) is None
    assert choose([cand("a", gain(1.05, 1.1)), cand("b", gain(1.2, 1.3)), cand("c", gain(1.1, 2.0))]) == 1
    assert choose([cand("a", gain(1.2, 1.3)), cand("b", gain(1.2, 1.4))]) == 0  # a tie: the earliest
    assert choose([cand("a", gain(None))]) is None


def test_a_known_faster_candidate_wins_with_its_interval():
    fast = SessionSettings.default(2).model_copy(update={"allow_spinning": False}).label()
    serving, _ = search(factory({fast: 1.5}), FEEDS, CONFIG, 2, 1, None, monitor=quiet)
    assert serving.tuned and serving.change == "allow_spinning=0"
    assert serving.settings.allow_spinning is False and serving.settings.intra_op_num_threads == 2
    assert serving.gain is not None and 1.0 < serving.gain.ci_low <= 1.5 <= serving.gain.ci_high * 1.05
    assert len(serving.candidates) == len(candidates(SessionSettings.default(2), CONFIG.factors, 2))
    assert all(c.gain is not None for c in serving.candidates)


def test_noise_only_keeps_the_default():
    serving, _ = search(factory({}, noise=0.5), FEEDS, CONFIG, 2, 1, None, monitor=quiet)
    assert not serving.tuned and serving.settings == SessionSettings.default(2)
    assert serving.change == "default" and serving.reason == NO_WIN and serving.gain is None


def test_the_same_timings_give_the_same_choice():
    fast = SessionSettings.default(4).model_copy(update={"graph_optimization_level": "basic"}).label()
    first, _ = search(factory({fast: 1.3}, noise=0.3), FEEDS, CONFIG, 4, 1, None, monitor=quiet)
    again, _ = search(factory({fast: 1.3}, noise=0.3), FEEDS, CONFIG, 4, 1, None, monitor=quiet)
    assert first == again and first.change == "graph_optimization_level=basic"


def test_a_candidate_that_fails_to_load_is_recorded_and_the_search_goes_on():
    default = SessionSettings.default(2)
    broken = default.model_copy(update={"enable_cpu_mem_arena": False}).label()
    fast = default.model_copy(update={"graph_optimization_level": "extended"}).label()
    serving, _ = search(factory({fast: 2.0}, fail=(broken,)), FEEDS, CONFIG, 2, 1, None, monitor=quiet)
    failed = next(c for c in serving.candidates if c.change == "enable_cpu_mem_arena=0")
    assert failed.gain is None and failed.note.startswith("failed to load: RuntimeError")
    assert serving.change == "graph_optimization_level=extended"


def test_the_budget_stops_the_search_and_names_what_was_not_timed():
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # every reading is one second later
        return now[0]

    config = TuneSessionPass(type="tune-session", iterations=5, warmup=0, budget_s=3, max_rounds=5)
    serving, _ = search(factory({}), FEEDS, config, 2, 1, None, clock=clock, monitor=quiet)
    untimed = [c for c in serving.candidates if c.gain is None]
    assert untimed and all(c.note == "not timed: budget_s ran out" for c in untimed)
    assert serving.candidates[0].gain is not None


def test_the_default_runner_failing_propagates():
    def make(settings: SessionSettings) -> Runner:
        return FakeRunner(settings, 1e-3, 0.0, 0, fail=True)

    with pytest.raises(RuntimeError, match="refuses"):
        search(make, FEEDS, CONFIG, 2, 1, None, monitor=quiet)


def test_recipe_requires_tune_session_last_and_once():
    from pydantic import ValidationError

    from optkit.recipe import Recipe

    with pytest.raises(ValidationError, match="tune-session must be the last pass"):
        Recipe.model_validate({"name": "x", "passes": [{"type": "tune-session"}, {"type": "simplify"}]})
    with pytest.raises(ValidationError, match="tune-session must be the last pass"):
        Recipe.model_validate({"name": "x", "passes": [{"type": "tune-session"}, {"type": "tune-session"}]})
    ok = Recipe.model_validate({"name": "x", "passes": [{"type": "simplify"}, {"type": "tune-session"}]})
    assert ok.passes[-1].type == "tune-session"


def test_pass_config_refuses_bad_rounds_and_repeated_factors():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_rounds"):
        TuneSessionPass(type="tune-session", rounds=6, max_rounds=5)
    with pytest.raises(ValidationError, match="twice"):
        TuneSessionPass(type="tune-session", factors=["spinning", "spinning"])


def test_a_winner_timed_on_a_busy_machine_does_not_replace_the_default():
    fast = SessionSettings.default(2).model_copy(update={"intra_op_num_threads": 1}).label()
    serving, warnings = search(factory({fast: 1.6}), FEEDS, CONFIG, 2, 1, None, monitor=busy)
    assert not serving.tuned and serving.settings == SessionSettings.default(2)
    assert serving.reason.startswith("intra_op_num_threads=1 beat the default (1.")
    assert "other processes used 1.75 cores" in serving.reason and "on_busy_machine: use" in serving.reason
    assert any(w.startswith("tune-session: intra_op_num_threads=1 beat") for w in warnings)
    assert serving.candidates[0].others_cores == 1.75
    use = CONFIG.model_copy(update={"on_busy_machine": "use"})
    taken, _ = search(factory({fast: 1.6}), FEEDS, use, 2, 1, None, monitor=busy)
    assert taken.tuned and taken.change == "intra_op_num_threads=1"


def _tiny_model(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize(("batch", "expected"), [(None, 3), (5, 5)])
def test_run_times_the_gated_shape_unless_the_config_names_one(tmp_path, batch, expected):
    from types import SimpleNamespace

    from optkit.io_spec import ModelInfo
    from optkit.pass_context import PassContext
    from optkit.passes.tune_session import run
    from optkit.validation.data import ValidationSet

    model = _tiny_model(tmp_path / "m.onnx")
    vset = ValidationSet("npz", "x.npz", {"x": np.ones((8, 4), np.float32)})
    evaluator = SimpleNamespace(latency_feeds=vset.shaped(3, None))
    config = TuneSessionPass(type="tune-session", factors=["memory_arena"], rounds=3, max_rounds=3, iterations=2)
    if batch is not None:
        config = config.model_copy(update={"batch_size": batch})
    ctx = PassContext(tmp_path, ModelInfo(), 1, validation=vset, evaluator=evaluator, threads=1)
    outcome = run(model, config, ctx)
    assert outcome.model_path == model and outcome.serving is not None  # the model itself is unchanged
    assert outcome.serving.batch_size == expected and outcome.serving.sequence_length is None
    assert [c.change for c in outcome.serving.candidates] == ["enable_cpu_mem_arena=0"]
    assert outcome.details["settings"] == outcome.serving.settings.label()


def test_serving_rows_give_each_candidate_its_verdict():
    from optkit.reporting.serving import SERVING_COLUMNS, serving_rows

    fast = SessionSettings.default(2).model_copy(update={"allow_spinning": False}).label()
    serving, _ = search(factory({fast: 1.5}), FEEDS, CONFIG, 2, 1, None, monitor=quiet)
    rows = {r[0]: r for r in serving_rows(serving)}
    assert all(len(r) == len(SERVING_COLUMNS) for r in rows.values())
    assert rows["allow_spinning=0"][-1] == "chosen" and rows["allow_spinning=0"][-2] == "0.00"
    assert {r[-1] for k, r in rows.items() if k != "allow_spinning=0"} == {"not faster"}
