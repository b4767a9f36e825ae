"""Accuracy-aware static int8 (QDQ) for CNNs: the first calibrated candidate that meets the gates.

Order (deterministic for the same model, data and recipe; see
:class:`~optkit.pass_configs.quantize_static.StaticSearchSpace`):

1. ``static``: every ``activations × per_channel × reduce_range × calibrate_methods`` combination
   of the search space, fully quantized (ONNX Runtime's QDQ default op types), in the listed
   nesting and order: expected speed first (asymmetric quint8 activations: ORT's u8s8 kernels, its
   fast path on x86), then simplicity (8-bit before 7-bit weights; MinMax, then percentile, then
   entropy: the cheapest calibrator first). The
   first one that meets every accuracy gate is chosen and the search stops (all fully quantized
   candidates run the same QLinearConv/QGemm kernels, so nothing faster is left to find).
2. ``fp32 fallback`` (only when none passed): the candidate with the largest gate margin keeps its
   most sensitive nodes in float32: depthwise convolutions (``Conv`` with ``group`` equal to its
   output channels, > 1) first, then every other quantizable node; within each group by
   :func:`optkit.search.sensitivity.rank_nodes` (weight error for Conv, output error on real
   activations for MatMul/Gemm). 1, 2, 4, … nodes are kept until the gates hold, then a bisection
   between the last failing and the first passing count keeps as few as the gates allow; the
   first passing count found is chosen.

The chosen model (when it met the gates) is then timed against the fp32 input in
:data:`RANK_ROUNDS` alternating rounds at the gated shape, as the int8 search's ranking does, and
its speed-up with a 95 % interval is recorded in its row; when the whole interval is below 1.0× a
warning says the int8 model is slower than its fp32 input on this CPU
(:mod:`optkit.search.input_speed`). Cost: ``2 × RANK_ROUNDS × (iterations + 1)`` calls.

Each candidate is scored by the pass context's evaluator (the recipe's accuracy gates on the
validation set); calibration batches come from the pass (a split distinct from the validation data
when the recipe names one). When nothing passes, the closest candidate (largest gate margin) is
returned with a warning; the pipeline's gates then fail and nothing is emitted.
"""

from __future__ import annotations

import errno
import itertools
import time
from pathlib import Path

import onnx

from optkit import interrupts
from optkit.errors import PassError
from optkit.onnx_io import load_onnx, name_nodes, save_onnx
from optkit.pass_context import PassContext, PassOutcome
from optkit.recipe import QuantizeStaticPass
from optkit.records.figures import Figure
from optkit.records.search import CandidateGate, NodeSensitivityRecord, SearchReport, Stage
from optkit.runners.base import Feeds
from optkit.search.candidates import CandidateRun
from optkit.search.fallback_count import fewest_fp32_nodes
from optkit.search.input_speed import slower_than_input, time_against_input
from optkit.search.ort_static import quantize_static_qdq
from optkit.search.sensitivity import NodeSensitivity, quantizable_nodes, rank_nodes
from optkit.validation.int8_compute import int8_compute_ops
from optkit.validation.speed import size_on_disk_mb

#: alternating rounds in which the chosen model and the fp32 input are timed (as the int8 search's ranking)
RANK_ROUNDS = 5

#: op types a static QDQ search keeps in float32 one node at a time (constant weights only)
FALLBACK_OPS = ["Conv", "MatMul", "Gemm"]


def search(model_path: Path, config: QuantizeStaticPass, ctx: PassContext, batches: list[Feeds], source: str):
    """Search static int8 settings for ``model_path`` (fp32 ONNX) and return the chosen model.

    Args:
        batches: calibration inputs, ``{input: (B, ...) array}`` per batch (the pass reads them).
        source: where the calibration samples came from, recorded in every row.

    Returns:
        A :class:`~optkit.pass_context.PassOutcome` whose ``search`` is the candidate table and
        whose ``details`` name the winning family (``search_family``) and its settings.

    Raises:
        PassError: no evaluator in ``ctx``, nothing quantizable, or no candidate could be built.
        OSError: the disk is full (ENOSPC/EDQUOT).
    """
    if ctx.evaluator is None or ctx.validation is None:
        raise PassError(
            "the accuracy-aware static int8 search needs validation data and accuracy gates",
            "run the pass through optkit convert / optkit.convert",
        )
    return _StaticSearch(model_path, config, ctx, batches, source).run()


def depthwise_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the depthwise convolutions: ``Conv`` with ``group > 1`` equal to its weight's
    output channels (weight ``(C, 1, kH, kW)``, a constant initializer), in graph order."""
    inits = {t.name: t for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if group > 1 and group == inits[node.input[1]].dims[0]:
            found.append(node.name)
    return found


def fallback_order(ranking: list[NodeSensitivity], depthwise: list[str]) -> list[str]:
    """Node names in fp32-fallback order: the depthwise convolutions first, then the rest; each
    group in ``ranking``'s order (most sensitive first, deterministic)."""
    wanted = set(depthwise)
    return [s.name for s in ranking if s.name in wanted] + [s.name for s in ranking if s.name not in wanted]


class _StaticSearch:
    def __init__(
        self, model_path: Path, config: QuantizeStaticPass, ctx: PassContext, batches: list[Feeds], source: str
    ) -> None:
        self.config, self.space, self.ctx = config, config.search_space, ctx
        self.batches, self.source = batches, source
        self.start = time.perf_counter()
        self.model = load_onnx(model_path)
        name_nodes(self.model)
        self.path = ctx.output_path("named")
        save_onnx(self.model, self.path, ctx.external_threshold_mb)
        self.nodes = quantizable_nodes(self.model, FALLBACK_OPS)
        self.rows: list[CandidateRun] = []
        self.exhausted = False
        self.ranking: list[NodeSensitivity] = []

    def run(self) -> PassOutcome:
        if not self.nodes:
            raise PassError(
                "nothing to quantize: the model has no Conv/MatMul/Gemm with constant weights",
                "remove the quantize-static pass from the recipe",
            )
        self._try(CandidateRun(0, "fp32 input"))
        space = self.space
        for acts, per_channel, reduce, method in itertools.product(
            space.activations, space.per_channel, space.reduce_range, space.calibrate_methods
        ):
            cand = self._try(self._static(method, per_channel, acts, reduce))
            if cand is None or cand.passed:
                break
        if not any(c.passed and c.is_int8 for c in self.rows) and self.space.node_fallback:
            self._fallback()
        return self._outcome()

    def _static(
        self, method: str, per_channel: bool, activations, reduce_range: bool, fp32_nodes: list[str] | None = None
    ) -> CandidateRun:
        stage: Stage = "fp32 fallback" if fp32_nodes else "static"
        return CandidateRun(
            len(self.rows),
            stage,
            "qint8",
            per_channel,
            reduce_range,
            fp32_nodes=list(fp32_nodes or []),
            quantizer="static",
            calibrate_method=method,
            calibration=self.source,
            activations=activations,
        )

    def _budget_left(self) -> bool:
        if time.perf_counter() - self.start <= self.config.search_budget_s or not any(c.is_int8 for c in self.rows):
            return True  # at least one int8 candidate is always tried
        self.exhausted = True
        return False

    def _try(self, cand: CandidateRun) -> CandidateRun | None:
        interrupts.check()
        if not self._budget_left():
            return None
        began = time.perf_counter()
        self.rows.append(cand)
        try:
            if cand.is_int8:
                cand.path = self.ctx.output_path(f"quantize-static-c{cand.id:02d}")
                cand.quantized_ops = quantize_static_qdq(
                    self.path,
                    cand.path,
                    self.batches,
                    str(cand.calibrate_method),
                    bool(cand.per_channel),
                    None,
                    cand.fp32_nodes,
                    symmetric_activations=cand.activations == "symmetric",
                    reduce_range=bool(cand.reduce_range),
                    float_outputs=self.config.float_outputs,
                )
                cand.int8_compute = sum(int8_compute_ops(onnx.load(str(cand.path), load_external_data=False)).values())
            else:
                cand.path = self.path
            score = self.ctx.evaluator.score(cand.path)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # a full disk ends the run (one line, exit 2), it is not a bad candidate
            cand.error, cand.verdict = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}", "error"
        except Exception as exc:  # a setting the quantizer or runtime rejects is a row, not the end
            cand.error, cand.verdict = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}", "error"
        else:
            cand.metrics = dict(score.accuracy.metrics)
            cand.gates = [CandidateGate(name=g.name, value=g.value, status=g.status) for g in score.gates]
            cand.passed, cand.margin = score.passed, score.margin
            cand.latency_ms, cand.best_ms = score.latency_ms, score.best_ms
            cand.size_mb = size_on_disk_mb(cand.path, cand.path.with_name(cand.path.name + ".data"))
            cand.verdict = "reference" if not cand.is_int8 else ("passed" if cand.passed else "failed")
        interrupts.check()
        cand.seconds = time.perf_counter() - began
        self.ctx.progress(_line(cand))
        return cand

    def _closest(self, stage: str | None = None) -> CandidateRun | None:
        """The scored int8 candidate with the largest gate margin (earliest wins ties)."""
        pool = [c for c in self.rows if c.is_int8 and not c.error and (stage is None or c.stage == stage)]
        return max(pool, key=lambda c: (c.margin, -c.id)) if pool else None

    def _fallback(self) -> None:
        base = self._closest(stage="static")
        if base is None or not self._budget_left():
            return
        batches = self.ctx.validation.batches(self.space.sensitivity_samples)[:1]
        self.ctx.progress(f"ranking {len(self.nodes)} node(s) by int8 sensitivity, depthwise convolutions first")
        try:
            self.ranking = rank_nodes(
                self.model,
                self.nodes,
                batches,
                self.ctx.workdir,
                self.ctx.threads,
                "qint8",
                bool(base.per_channel),
                bool(base.reduce_range),
            )
        except Exception as exc:
            raise PassError(
                f"node sensitivity analysis failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                "set search_space.node_fallback: false, or exclude nodes by hand (nodes_to_exclude)",
            ) from exc
        names = fallback_order(self.ranking, depthwise_nodes(self.model))
        limit = len(names) if self.config.allow_fp32 else len(names) - 1

        def passes(count: int) -> bool | None:
            cand = self._fallback_candidate(base, names[:count])
            return None if cand is None else cand.passed

        fewest_fp32_nodes(limit, passes)

    def _fallback_candidate(self, base: CandidateRun, fp32_nodes: list[str]) -> CandidateRun | None:
        return self._try(
            self._static(
                str(base.calibrate_method),
                bool(base.per_channel),
                base.activations,
                bool(base.reduce_range),
                fp32_nodes,
            )
        )

    def _choose(self) -> tuple[CandidateRun, bool]:
        """The passing candidate with the fewest fp32 nodes, earliest first (stage 1 stops at its
        first pass, so that is the first passing full candidate or the smallest fallback)."""
        passing = [c for c in self.rows if c.passed and c.is_int8 and not c.error]
        if not self.config.allow_fp32:
            passing = [c for c in passing if (c.int8_compute or 0) > 0]
        if passing:
            return min(passing, key=lambda c: (len(c.fp32_nodes), c.id)), True
        closest = self._closest()
        if closest is None:
            errors = "; ".join(f"{c.settings()}: {c.error}" for c in self.rows if c.error)
            raise PassError(
                f"no static int8 candidate could be built or run ({errors[:300]})",
                "check the quantize-static search_space and calibration data",
            )
        return closest, False

    def _outcome(self) -> PassOutcome:
        chosen, met = self._choose()
        chosen.verdict = "chosen"
        warnings: list[str] = []
        if not met:
            failing = [g for g in chosen.gates if g.status == "failed"]
            gate_text = ", ".join(
                f"{g.name} (closest: {'nothing' if g.value is None else format(g.value, '.4g')})" for g in failing
            )
            warnings.append(
                f"no static int8 candidate met the accuracy gates after {len(self.rows) - 1} candidate(s)"
                f"{' (search budget exhausted)' if self.exhausted else ''}; failing: {gate_text}. Try: a larger "
                "--search-budget, more or other calibration data, or a recipe whose gates match what int8 can hold"
            )
        if self.exhausted:
            warnings.append(
                f"search budget of {self.config.search_budget_s:g} s exhausted after {len(self.rows) - 1} candidate(s)"
            )
        family = family_of(chosen)
        self.ctx.progress(f"chosen: candidate {chosen.id}, {family}")
        shape = "×".join(str(d) for d in next(iter(self.ctx.evaluator.latency_feeds.values())).shape)
        if met and chosen.is_int8 and not self.rows[0].error and self.rows[0].path is not None:
            assert chosen.path is not None  # scored, so written
            chosen.speedup = time_against_input(self.ctx.evaluator, self.rows[0].path, chosen.path, RANK_ROUNDS)
            if chosen.speedup is not None:
                est = chosen.speedup
                self.ctx.progress(
                    f"speed-up of candidate {chosen.id} over the fp32 input at {shape}: {est.ratio:.2f}× "
                    f"[{est.ci_low:.2f}, {est.ci_high:.2f}], {est.p50_ms:.2f} ms p50"
                )
            slower = slower_than_input(chosen.speedup, shape)
            if slower:
                warnings.append(slower)
        search = SearchReport(
            strategy="accuracy-aware",
            candidates=[c.record() for c in self.rows],
            chosen=chosen.id,
            met_gates=met,
            fp32_nodes=chosen.fp32_nodes,
            budget_s=self.config.search_budget_s,
            budget_exhausted=self.exhausted,
            elapsed_s=round(time.perf_counter() - self.start, 1),
            latency_shape=shape,
            sensitivity=[
                NodeSensitivityRecord(node=s.name, op_type=s.op_type, error=s.error, method=s.method)
                for s in self.ranking[:30]
            ],
        )
        details: dict[str, Figure] = {
            "search_family": family,
            "candidates": len(self.rows) - 1,
            "calibrate_method": chosen.calibrate_method,
            "per_channel": chosen.per_channel,
            "reduce_range": chosen.reduce_range,
            "activation_type": "qint8" if chosen.activations == "symmetric" else "quint8",
            "activations": chosen.activations,
            "weight_type": "qint8",
            "float_outputs": self.config.float_outputs,
            "nodes_to_exclude": chosen.fp32_nodes,
            "depthwise_convs": len(depthwise_nodes(self.model)),
        }
        for cand in self.rows:  # free disk: only the chosen model is needed from here on
            if cand is not chosen and cand.is_int8 and cand.path is not None:
                cand.path.unlink(missing_ok=True)
                cand.path.with_name(cand.path.name + ".data").unlink(missing_ok=True)
        assert chosen.path is not None  # every candidate that can be chosen was written
        return PassOutcome(chosen.path, details, warnings, search=search)


def family_of(cand: CandidateRun) -> str:
    """The winning family in words, e.g. ``static QDQ entropy, per-channel weights, asymmetric
    quint8 activations, 2 node(s) in fp32`` (``fp32 input`` for the reference)."""
    if not cand.is_int8:
        return "fp32 input"
    acts = "symmetric qint8" if cand.activations == "symmetric" else "asymmetric quint8"
    weights = ("per-channel" if cand.per_channel else "per-tensor") + (" 7-bit" if cand.reduce_range else "")
    kept = f", {len(cand.fp32_nodes)} node(s) in fp32" if cand.fp32_nodes else ", fully quantized"
    return f"static QDQ {cand.calibrate_method}, {weights} weights, {acts} activations{kept}"


def _line(cand: CandidateRun) -> str:
    kept = f", {len(cand.fp32_nodes)} node(s) in fp32" if cand.fp32_nodes else ""
    if cand.error:
        return f"candidate {cand.id} [{cand.stage}] {cand.settings()}{kept}: error {cand.error}"
    gates = ", ".join(f"{g.name.split()[0]} {g.value:.4g}" for g in cand.gates if g.value is not None)
    verdict = "reference" if not cand.is_int8 else ("PASS" if cand.passed else "FAIL")
    return (
        f"candidate {cand.id} [{cand.stage}] {cand.settings()}{kept}: {gates} → {verdict}, "
        f"{cand.latency_ms:.2f} ms p50 ({cand.seconds:.0f} s)"
    )


__all__ = ["FALLBACK_OPS", "depthwise_nodes", "fallback_order", "family_of", "search"]
