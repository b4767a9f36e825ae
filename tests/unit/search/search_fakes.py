"""Tiny ``onnx.helper`` graphs and a scripted evaluator for the int8 search's own logic.

Nothing here imports torch or runs an ONNX Runtime session: the candidates are quantized by ONNX
Runtime's quantizer (pure Python over the graph), then "scored" by reading which nodes the
candidate file still holds in float32, so a test can say exactly which nodes are harmful.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from optkit.io_spec import ModelInfo
from optkit.pass_context import PassContext
from optkit.recipe import QuantizeDynamicPass
from optkit.search.evaluator import Score, gate_margin
from optkit.validation.accuracy import AccuracyReport
from optkit.validation.gates import GateResult

#: the one accuracy gate every fake score is judged by
THRESHOLD = 0.99


def chain(names: list[str], unnamed: bool = False) -> onnx.ModelProto:
    """``x (2, 8) -> MatMul(w_i) -> ... -> y``: one MatMul with a constant 8 × 8 weight per name."""
    rng = np.random.default_rng(0)
    inits, nodes, prev = [], [], "x"
    for index, name in enumerate(names):
        inits.append(numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), f"w_{index}"))
        out = f"h_{index}"
        nodes.append(helper.make_node("MatMul", [prev, f"w_{index}"], [out], name="" if unnamed else name))
        prev = out
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [2, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def pre_ln_chain() -> onnx.ModelProto:
    """x (2, 8) -> LayerNorm -> MatMul "a" -> MatMul "b": the LayerNorm can absorb a smoothing scale."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), "w_0"),
        numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), "w_1"),
    ]
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["y"], name="ln", axis=-1),
        helper.make_node("MatMul", ["y", "w_0"], ["h_0"], name="a"),
        helper.make_node("MatMul", ["h_0", "w_1"], ["h_1"], name="b"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("h_1", TensorProto.FLOAT, [2, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@dataclass
class View:
    """What the fake evaluator reads from one candidate file.

    Attributes:
        id: the candidate id (from the file name ``NN-quantize-dynamic-cID.onnx``; 0 = the input).
        fp32: names of the original MatMul nodes still in float32.
        int8: names of the MatMul nodes quantized (``MatMulInteger`` named ``<name>_quant``).
        weight_type: ``"qint8"`` / ``"quint8"`` from the quantized weights' dtype, None for fp32.
        per_channel: one weight scale per output channel (None for fp32).
        static: a static QDQ candidate (it holds DequantizeLinear nodes; its MatMuls stay MatMul).
    """

    id: int
    fp32: set[str]
    int8: set[str]
    weight_type: str | None
    per_channel: bool | None
    static: bool = False


def read_view(path: Path) -> View:
    model = onnx.load(str(path))
    found = re.search(r"-c(\d+)\.onnx$", path.name)
    inits = {t.name: t for t in model.graph.initializer}
    integer = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    weight_type = per_channel = None
    if integer:
        weight = inits[integer[0].input[1]]
        weight_type = {TensorProto.INT8: "qint8", TensorProto.UINT8: "quint8"}[weight.data_type]
        scale = inits[integer[0].input[1].replace("_quantized", "_scale")]
        per_channel = int(np.prod(scale.dims)) > 1
    return View(
        int(found.group(1)) if found else 0,
        {n.name for n in model.graph.node if n.op_type == "MatMul"},
        {n.name.removesuffix("_quant") for n in integer},
        weight_type,
        per_channel,
        any(n.op_type == "DequantizeLinear" for n in model.graph.node),
    )


class FakeEvaluator:
    """The ``score`` / ``time_rounds`` / ``iterations`` / ``latency_feeds`` interface of
    ``CandidateEvaluator``.

    Args:
        rule: ``(View) -> (cosine_min, best_ms)``; the candidate passes when
            ``cosine_min >= THRESHOLD``. It may raise to make the candidate an error row.
        timings: ``{candidate id: (rounds, calls) ms}`` that ``time_rounds`` reports; an id not
            listed gets :func:`steady` blocks at its scored ``best_ms`` (no spread).
        clock: a :class:`FakeClock` advanced by ``seconds_per_score`` at each score.
        fail_timing: ``time_rounds`` raises this instead of timing.
        zero_gate: also a ``nonfinite_outputs <= 0`` gate at 0 on every candidate (margin 0 for
            all, as the NER recipes' gate gives), before the cosine gate.
    """

    iterations = 3

    def __init__(
        self,
        rule: Callable[[View], tuple[float, float]],
        timings: dict[int, list[list[float]]] | None = None,
        clock: FakeClock | None = None,
        seconds_per_score: float = 0.0,
        fail_timing: Exception | None = None,
        zero_gate: bool = False,
    ) -> None:
        self.rule, self.timings, self.clock, self.step = rule, timings or {}, clock, seconds_per_score
        self.fail_timing, self.zero_gate = fail_timing, zero_gate
        self.latency_feeds = {"x": np.zeros((1, 8), np.float32)}
        self.scored: list[View] = []
        self.retimed: list[list[int]] = []
        self._best: dict[int, float] = {}

    def score(self, model_path: Path) -> Score:
        view = read_view(model_path)
        self.scored.append(view)
        if self.clock is not None:
            self.clock.now += self.step
        value, best = self.rule(view)
        status = "passed" if value >= THRESHOLD else "failed"
        gate = GateResult(f"cosine_min >= {THRESHOLD}", "accuracy", "cosine_min", ">=", THRESHOLD, value, status)
        self._best[view.id] = best
        report = AccuracyReport(metrics={"cosine_min": value}, samples=4)
        gates = [gate]
        if self.zero_gate:
            zero = GateResult("nonfinite_outputs <= 0", "accuracy", "nonfinite_outputs", "<=", 0.0, 0.0, "passed")
            gates.insert(0, zero)
        margin = min(gate_margin(g) for g in gates)
        return Score(report, gates, status == "passed", margin, best * 1.5, best)

    def time_rounds(self, model_paths: list[Path], rounds: int = 5) -> list[list[list[float]]]:
        """Seconds per call, (models, rounds, calls), from ``timings`` (ms) or steady blocks."""
        ids = [read_view(p).id for p in model_paths]
        self.retimed.append(ids)
        if self.fail_timing is not None:
            raise self.fail_timing
        table = {i: self.timings.get(i) or steady(self._best[i], rounds) for i in ids}
        assert all(len(table[i]) == rounds for i in ids), "scripted timings must have one block per round"
        return [[[ms / 1e3 for ms in block] for block in table[i]] for i in ids]


def steady(ms: float, rounds: int = 5, calls: int = 3) -> list[list[float]]:
    """Blocks of identical calls: an interval of zero width at ``ms``."""
    return [[ms] * calls for _ in range(rounds)]


def noisy(ms: float, spread: float, shift: int = 0, rounds: int = 5, calls: int = 3) -> list[list[float]]:
    """Deterministic 'noisy' blocks around ``ms``: round ``r`` is scaled by the fixed factor
    ``FACTORS[(r + shift) % 5]`` (between ``1 - spread`` and ``1 + spread``), its calls by +0 %,
    +1 %, +2 %. Models with different ``shift`` have rounds that do not move together (the
    ratio's interval gets wide); with the same ``shift`` they move together (narrow)."""
    factors = [1.0, 1.0 + spread, 1.0 - spread / 2, 1.0 + spread / 2, 1.0 - spread]
    return [[ms * factors[(r + shift) % 5] * (1 + 0.01 * k) for k in range(calls)] for r in range(rounds)]


class FakeClock:
    """Stands in for the ``time`` module of ``optkit.search.int8_search`` (``perf_counter`` only)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class FakeValidation:
    """``ctx.validation``: ``batches`` (the sensitivity ranking) and ``feeds`` (4 samples: the static
    candidates calibrate on samples 0 and 2, one batch of the chain's fixed 2 rows)."""

    feeds = {"x": np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)}

    def batches(self, size: int) -> list[dict[str, np.ndarray]]:
        return [{"x": np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8)}]


def config(**space) -> QuantizeDynamicPass:
    """An accuracy-aware pass; ``space`` overrides the search space (default: qint8 per-channel only)."""
    space = {"weight_types": ["qint8"], "per_channel": [True], "reduce_range": [False], **space}
    budget = space.pop("budget", 900.0)
    return QuantizeDynamicPass(
        type="quantize-dynamic", search="accuracy-aware", search_space=space, search_budget_s=budget
    )


def context(workdir: Path, evaluator: FakeEvaluator, lines: list[str] | None = None) -> PassContext:
    sink = lines if lines is not None else []
    return PassContext(workdir, ModelInfo(), validation=FakeValidation(), evaluator=evaluator, progress=sink.append)
