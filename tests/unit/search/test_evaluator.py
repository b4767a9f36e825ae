"""gate_margin (optkit.search.evaluator): how failing candidates are ranked against each other."""

from __future__ import annotations

import math

import pytest

from optkit.search.evaluator import gate_margin
from optkit.validation.gates import GateResult


def _gate(op: str, threshold: float, value: float | None) -> GateResult:
    status = "skipped" if value is None else "passed"
    return GateResult("g", "accuracy", "m", op, threshold, value, status)


@pytest.mark.parametrize(
    ("op", "threshold", "value", "margin"),
    [
        (">=", 0.99, 0.98, -1.0),  # (0.98 - 0.99) / (1 - 0.99): the room left below 1
        (">=", 0.99, 0.995, 0.5),
        (">=", 0.5, 0.75, 0.5),  # (0.75 - 0.5) / 0.5
        (">=", 2.0, 3.0, 0.5),  # a threshold outside (0, 1): scale max(|2|, 1)
        (">=", 0.0, 0.25, 0.25),  # threshold 0: scale 1
        ("<=", 0.0, 0.5, -0.5),  # nonfinite_outputs <= 0 with 0.5: scale 1
        ("<=", 10.0, 5.0, 0.5),  # (10 - 5) / 10
        ("<=", 0.1, 0.05, 0.05),  # scale max(0.1, 1) = 1
    ],
)
def test_margin_is_normalised_by_the_room_to_the_threshold(op, threshold, value, margin):
    assert gate_margin(_gate(op, threshold, value)) == pytest.approx(margin)


def test_nan_ranks_last_and_a_skipped_gate_never_ranks():
    assert gate_margin(_gate(">=", 0.99, math.nan)) == -math.inf
    assert gate_margin(_gate("<=", 0.0, math.nan)) == -math.inf
    assert gate_margin(_gate(">=", 0.99, None)) == math.inf


def test_time_rounds_gives_every_model_one_block_per_round_of_its_calls(tmp_path, monkeypatch):
    """Real ONNX Runtime sessions on a one-MatMul model; the order of blocks is recorded (no clock
    is read by the assertions)."""
    import numpy as np
    from search_fakes import chain, save

    import optkit.search.evaluator as evaluator_module
    from optkit.search.evaluator import CandidateEvaluator

    paths = [save(chain(["a"]), tmp_path / f"m{i}.onnx") for i in range(3)]
    order: list[str] = []
    real = evaluator_module.time_runner

    def recording(runner, feeds, warmup, iterations):
        order.append(f"{runner.model_path.stem}:{warmup}")
        return real(runner, feeds, warmup, iterations)

    monkeypatch.setattr(evaluator_module, "time_runner", recording)
    feeds = {"x": np.ones((2, 8), np.float32)}
    scorer = CandidateEvaluator({}, None, None, [], 1, 1, feeds, warmup=2, iterations=4)  # type: ignore[arg-type]
    blocks = scorer.time_rounds(paths, rounds=3)
    assert [len(b) for b in blocks] == [3, 3, 3] and all(len(r) == 4 for b in blocks for r in b)
    assert all(t > 0 for b in blocks for r in b for t in r)
    # the order rotates by one model per round; warm-up before a model's first block, then one call
    assert order == ["m0:2", "m1:2", "m2:2", "m1:1", "m2:1", "m0:1", "m2:1", "m0:1", "m1:1"]
