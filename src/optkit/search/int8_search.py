"""Accuracy-aware dynamic int8: find the fastest quantized model that meets the accuracy gates.

Order (deterministic for the same model, data and recipe):

1. ``settings``: every ``weight_type × per_channel × reduce_range`` of the search space, on ONNX
   Runtime's default op types; then ``static``: one static QDQ candidate (``quantize_static``,
   per-channel qint8 weights, quint8 activations) per ``search_space.static_methods`` calibrator,
   calibrated on ``search_space.calibration_data`` or on a deterministic split of the validation
   samples (every other one, recorded in the row). Between the two, when no setting passed:
   ``smoothed``: the most accurate setting on the model smoothed (SmoothQuant,
   :mod:`optkit.search.smoothquant`) with each ``search_space.smooth_alphas`` in order, until one passes;
2. ``op types`` (only when no stage-1 or static candidate passed): the most accurate setting with one
   quantizable op type left in float32 at a time;
3. ``fp32 fallback`` (only when no stage-1 candidate passed; it runs even when stage 2 found one,
   because a whole op type in float32 is usually slower than a few nodes): the nodes of the most
   accurate stage-1 candidate are ranked
   by :mod:`optkit.search.sensitivity`; the 1, 2, 4, … most sensitive are kept in float32 until the
   gates hold, then a bisection between the last failing and first passing count keeps as few
   nodes in float32 as the gates allow.

Each candidate is scored by :class:`~optkit.search.evaluator.CandidateEvaluator` on the whole
validation set (its accuracy, and a first latency figure at the gated shape). The passing candidates
are then ranked with the speed gates' statistics (:mod:`optkit.search.ranking`): the fastest
:data:`MAX_TIMED` of them (by their scoring call) and the fp32 input are timed together in
:data:`RANK_ROUNDS` alternating rounds of one block of ``evaluator.iterations`` calls each; each
candidate's speed-up over the fp32 input gets a 95 % bootstrap interval over rounds; the one with
the largest speed-up is the fastest, the candidates whose interval overlaps its interval (or within
``latency_tolerance`` plus 0.05 ms of its median) are a near-tie, and among those the most accurate
(gate margins compared worst first, leximin) wins, then the earliest in search order, so the
choice between candidates that timing cannot separate does not depend on timing. Cost: ``(timed + 1) × RANK_ROUNDS ×
(iterations + 1)`` calls at the gated shape, at most 7 × 5 × 16 = 560 (for the NER sample at
1 × 128 tokens, a few seconds), once per search, even when one candidate passes (its interval is
recorded). When nothing passes, the closest candidate (largest gate margin) is
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
from optkit.recipe import QuantizeDynamicPass
from optkit.records.figures import Figure
from optkit.records.search import CandidateGate, NodeSensitivityRecord, Ranking, SearchReport, SpeedupInterval
from optkit.search.candidates import CandidateRun
from optkit.search.evaluator import gate_margin
from optkit.search.fallback_count import fewest_fp32_nodes
from optkit.search.ort_quantize import quantize
from optkit.search.ort_static import quantize_static_qdq
from optkit.search.ranking import TIMER_FLOOR_MS, Contender, rank
from optkit.search.sensitivity import NodeSensitivity, exclusion_names, op_type_of, quantizable_nodes, rank_nodes
from optkit.validation.int8_compute import INT8_COMPUTE_OPS, int8_compute_ops
from optkit.validation.speed import size_on_disk_mb

#: alternating rounds the ranking times the passing candidates and the fp32 input in
RANK_ROUNDS = 5
#: the most passing candidates the ranking times (the fastest by their scoring call)
MAX_TIMED = 6
#: the ranking rule in words (recorded in the report)
RULE = (
    "largest speed-up over the fp32 input (95 % bootstrap interval over rounds); candidates whose "
    "interval overlaps the fastest's, or within latency_tolerance of it, tie: the most accurate "
    "(normalised gate margins compared worst first) wins, then the earliest"
)


def search(model_path: Path, config: QuantizeDynamicPass, ctx: PassContext) -> PassOutcome:
    """Run the search on ``model_path`` (fp32 ONNX) and return the chosen model.

    The outcome's ``search`` (a :class:`~optkit.records.search.SearchReport`) holds every
    candidate's row, the chosen id, the nodes kept in float32, the node sensitivity ranking (when
    computed) and the time spent; ``details`` the chosen settings.

    Raises:
        PassError: no evaluator in ``ctx`` (the search needs validation data and gates), the
            model has nothing to quantize, or no candidate could be built at all.
    """
    if ctx.evaluator is None or ctx.validation is None:
        raise PassError(
            "the accuracy-aware int8 search needs validation data and accuracy gates",
            "run the pass through optkit convert / optkit.convert",
        )
    return _Search(model_path, config, ctx).run()


class _Search:
    def __init__(self, model_path: Path, config: QuantizeDynamicPass, ctx: PassContext) -> None:
        self.config, self.space, self.ctx = config, config.search_space, ctx
        self.start = time.perf_counter()
        self.model = load_onnx(model_path)
        self.path = self._named_copy(model_path)
        self.nodes = quantizable_nodes(self.model, None)
        self.rows: list[CandidateRun] = []
        self.exhausted = False
        self.ranking: list[NodeSensitivity] = []
        self._calibration: tuple[list, str] | None = None
        self.float_only: list[int] = []  # passing candidates without int8 compute (see _choose)
        self.ranking_record: Ranking | None = None

    def _named_copy(self, model_path: Path) -> Path:
        """Node names are how nodes are kept in fp32: give unnamed/duplicate nodes stable names."""
        before = [n.name for n in self.model.graph.node]
        name_nodes(self.model)
        if before == [n.name for n in self.model.graph.node]:
            return model_path
        path = self.ctx.output_path("named")
        save_onnx(self.model, path, self.ctx.external_threshold_mb)
        return path

    # ------------------------------------------------------------------ driving
    def run(self) -> PassOutcome:
        if not self.nodes:
            raise PassError(
                "nothing to quantize: the model has no MatMul/Gemm/Conv/Attention with constant weights",
                "remove the quantize-dynamic pass from the recipe",
            )
        self._try(CandidateRun(0, "fp32 input"))
        for wt, pc, rr in itertools.product(self.space.weight_types, self.space.per_channel, self.space.reduce_range):
            self._try(CandidateRun(len(self.rows), "settings", wt, pc, rr))
        if not any(c.passed and c.stage == "settings" for c in self.rows):
            self._smoothed()
        for method in self.space.static_methods:
            self._try(
                CandidateRun(
                    len(self.rows), "static", "qint8", True, False, quantizer="static", calibrate_method=method
                )
            )
        types = sorted({op_type_of(n) for n in self.nodes})
        base = self._closest(stage="settings")
        settled = any(c.passed and c.stage in ("settings", "smoothed", "static") for c in self.rows)
        if self.space.op_type_subsets and base is not None and len(types) > 1 and not settled:
            for left_out in types:
                kept = [t for t in types if t != left_out]
                self._try(
                    CandidateRun(
                        len(self.rows), "op types", base.weight_type, base.per_channel, base.reduce_range, kept
                    )
                )
        if not settled and self.space.node_fallback:
            self._fallback()
        return self._outcome()

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
            if cand.quantizer == "static":
                batches, cand.calibration = self._calibration_batches()
                cand.path = self.ctx.output_path(f"quantize-static-c{cand.id:02d}")
                cand.quantized_ops = quantize_static_qdq(
                    self.path, cand.path, batches, str(cand.calibrate_method), True, None, []
                )
                # QDQ: a MatMul counts as int8 only when both operands come from a DequantizeLinear
                qdq = onnx.load(str(cand.path), load_external_data=False)
                cand.int8_compute = sum(int8_compute_ops(qdq).values())
            elif cand.is_int8:
                assert cand.weight_type is not None  # is_int8
                cand.path = self.ctx.output_path(f"quantize-dynamic-c{cand.id:02d}")
                cand.quantized_ops = quantize(
                    cand.source or self.path,
                    cand.path,
                    cand.weight_type,
                    bool(cand.per_channel),
                    bool(cand.reduce_range),
                    cand.op_types,
                    exclusion_names(self.model, cand.fp32_nodes),
                )
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
            cand.margins = tuple(gate_margin(g) for g in score.gates)
            cand.passed, cand.margin, cand.latency_ms, cand.best_ms = (
                score.passed,
                score.margin,
                score.latency_ms,
                score.best_ms,
            )
            cand.size_mb = size_on_disk_mb(cand.path, cand.path.with_name(cand.path.name + ".data"))
            cand.verdict = "reference" if not cand.is_int8 else ("passed" if cand.passed else "failed")
        interrupts.check()  # a Ctrl-C that a native library turned into a candidate error ends the run
        cand.seconds = time.perf_counter() - began
        self.ctx.progress(self._line(cand))
        return cand

    def _smoothed(self) -> None:
        """The most accurate stage-1 setting on the model smoothed with each alpha, in order, until
        one passes (same speed as unsmoothed: smoothing changes weights only)."""
        base = self._closest(stage="settings")
        if base is None or not self.space.smooth_alphas:
            return
        from optkit.search.smoothquant import smooth

        batches = self.ctx.validation.batches(16)
        for alpha in self.space.smooth_alphas:
            model = load_onnx(self.path)
            try:
                layers = smooth(model, batches, alpha, self.ctx.threads)
            except Exception as exc:  # ONNX Runtime could not run the activation probe: no smoothed rows
                self.ctx.progress(f"smoothing skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
                return
            done = sum(layer.status == "smoothed" for layer in layers)
            self.ctx.progress(f"smoothing alpha={alpha:g}: {done} of {len(layers)} layer(s) smoothed")
            if not done:
                return  # nothing can absorb a scale: every alpha gives the same model
            source = self.ctx.output_path(f"smoothed-a{int(round(alpha * 100)):03d}")
            save_onnx(model, source, self.ctx.external_threshold_mb)
            cand = self._try(
                CandidateRun(
                    len(self.rows),
                    "smoothed",
                    base.weight_type,
                    base.per_channel,
                    base.reduce_range,
                    smooth_alpha=alpha,
                    source=source,
                )
            )
            if cand is None or cand.passed:
                return

    def _calibration_batches(self) -> tuple[list, str]:
        """Calibration batches for the static candidates and where they came from (computed once):
        ``search_space.calibration_data``, else every other validation sample (0, 2, 4, …, at most
        ``calibration_samples``), so the same split is used by every static candidate and run."""
        if self._calibration is None:
            samples = self.space.calibration_samples
            if self.space.calibration_data:
                from optkit.validation.data import load_validation_set

                feeds = load_validation_set(self.space.calibration_data, self.ctx.info, samples, 128).feeds
                size = len(next(iter(feeds.values())))
                source = f"{self.space.calibration_data} ({size} samples)"
            else:
                feeds, source = calibration_split(self.ctx.validation.feeds, samples)
            size = len(next(iter(feeds.values())))
            batches = [{k: v[i : i + 16] for k, v in feeds.items()} for i in range(0, size, 16)]
            self._calibration = (batches, source)
        return self._calibration

    def _line(self, cand: CandidateRun) -> str:
        kept = f", {len(cand.fp32_nodes)} node(s) in fp32" if cand.fp32_nodes else ""
        if cand.error:
            return f"candidate {cand.id} [{cand.stage}] {cand.settings()}{kept}: error {cand.error}"
        gates = ", ".join(f"{g.name.split()[0]} {g.value:.4g}" for g in cand.gates if g.value is not None)
        verdict = "reference" if not cand.is_int8 else ("PASS" if cand.passed else "FAIL")
        return (
            f"candidate {cand.id} [{cand.stage}] {cand.settings()}{kept}: {gates} → {verdict}, "
            f"{cand.latency_ms:.2f} ms p50, {cand.best_ms:.2f} ms best ({cand.seconds:.0f} s)"
        )

    def _closest(self, stage: str | None = None) -> CandidateRun | None:
        """The scored int8 candidate with the largest gate margin (earliest wins ties)."""
        pool = [c for c in self.rows if c.is_int8 and not c.error and (stage is None or c.stage == stage)]
        return max(pool, key=lambda c: (c.margin, -c.id)) if pool else None

    # ------------------------------------------------------------------ stage 3
    def _fallback(self) -> None:
        base = self._closest(stage="settings")
        if base is None or not self._budget_left():
            return
        assert base.weight_type is not None  # a "settings" candidate is int8
        nodes = quantizable_nodes(self.model, base.op_types)
        batches = self.ctx.validation.batches(self.space.sensitivity_samples)[:1]
        self.ctx.progress(
            f"ranking {len(nodes)} node(s) by int8 sensitivity on {self.space.sensitivity_samples} "
            f"samples ({base.settings()})"
        )
        try:
            self.ranking = rank_nodes(
                self.model,
                nodes,
                batches,
                self.ctx.workdir,
                self.ctx.threads,
                base.weight_type,
                bool(base.per_channel),
                bool(base.reduce_range),
            )
        except Exception as exc:
            raise PassError(
                f"node sensitivity analysis failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                "set search_space.node_fallback: false, or exclude nodes by hand",
            ) from exc
        names = [s.name for s in self.ranking]
        limit = len(names) if self.space.allow_fp32 else len(names) - 1

        def passes(count: int) -> bool | None:
            cand = self._fallback_candidate(base, names[:count])
            return None if cand is None else cand.passed

        fewest_fp32_nodes(limit, passes)

    def _fallback_candidate(self, base: CandidateRun, fp32_nodes: list[str]) -> CandidateRun | None:
        return self._try(
            CandidateRun(
                len(self.rows),
                "fp32 fallback",
                base.weight_type,
                base.per_channel,
                base.reduce_range,
                base.op_types,
                list(fp32_nodes),
            )
        )

    # ------------------------------------------------------------------ choice
    def _choose(self) -> tuple[CandidateRun, bool]:
        passing = [c for c in self.rows if c.passed and not c.error and c.is_int8 and _computes_int8(c)]
        self.float_only = [c.id for c in self.rows if c.passed and not c.error and c.is_int8 and not _computes_int8(c)]
        if not passing and self.space.allow_fp32:  # float-only int8 candidates, then the fp32 input, as a last resort
            passing = [c for c in self.rows if c.passed and not c.error and c.is_int8]
            passing = passing or [c for c in self.rows if c.passed and not c.error]
        if passing:
            return self._rank(passing), True
        closest = self._closest()
        if closest is None:
            errors = "; ".join(f"{c.settings()}: {c.error}" for c in self.rows if c.error)
            raise PassError(
                f"no int8 candidate could be built or run ({errors[:300]})",
                "check the quantize-dynamic search_space, or use quantize-static",
            )
        return closest, False

    def _rank(self, passing: list[CandidateRun]) -> CandidateRun:
        """The passing candidate :func:`~optkit.search.ranking.rank` chooses, after timing the
        fastest :data:`MAX_TIMED` of them (by their scoring call) and the fp32 input in
        :data:`RANK_ROUNDS` alternating rounds; records each one's interval and the ranking."""
        if not passing[0].is_int8:
            return passing[0]  # the fp32 input alone (allow_fp32): nothing to rank
        timed = sorted(sorted(passing, key=lambda c: (_best_ms(c), c.id))[:MAX_TIMED], key=lambda c: c.id)
        reference = self.rows[0] if not self.rows[0].error else timed[0]
        assert reference.path is not None and all(c.path is not None for c in timed)  # scored, so written
        calls = self.ctx.evaluator.iterations
        self.ctx.progress(
            f"ranking {len(timed)} passing candidate(s) against candidate {reference.id}: "
            f"{RANK_ROUNDS} alternating rounds of {calls} calls each"
        )
        try:
            blocks = self.ctx.evaluator.time_rounds([reference.path] + [c.path for c in timed], RANK_ROUNDS)
            ranking = rank(
                blocks[0],
                [Contender(c.id, c.margins, b) for c, b in zip(timed, blocks[1:], strict=True)],
                self.space.latency_tolerance,
            )
        except Exception as exc:  # a session that no longer runs: fall back to the scoring calls
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            self.ctx.progress(
                f"ranking timing failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
                "choosing by the fastest scoring call"
            )
            return min(timed, key=lambda c: (_best_ms(c), c.id))
        by_id = {c.id: c for c in timed}
        for figures in ranking.ranked:
            cand, est = by_id[figures.id], figures.estimate
            cand.best_ms = min(_best_ms(cand), figures.best_ms)
            cand.speedup = SpeedupInterval(
                ratio=round(est.ratio, 4),
                ci_low=round(est.ci_low, 4),
                ci_high=round(est.ci_high, 4),
                rounds=est.rounds,
                p50_ms=round(figures.p50_ms, 4),
                near_tie=figures.id in ranking.tied,
            )
            tag = "fastest" if cand.id == ranking.fastest else ("near-tie" if cand.id in ranking.tied else "slower")
            self.ctx.progress(
                f"speed-up of candidate {cand.id} over candidate {reference.id}: {est.ratio:.2f}× "
                f"[{est.ci_low:.2f}, {est.ci_high:.2f}], {figures.p50_ms:.2f} ms p50 ({tag})"
            )
        self.ranking_record = Ranking(
            reference=reference.id,
            rounds=RANK_ROUNDS,
            calls_per_block=calls,
            fastest=ranking.fastest,
            tied=ranking.tied,
            timed=[c.id for c in timed],
            rule=RULE,
        )
        return by_id[ranking.chosen]

    def _outcome(self) -> PassOutcome:
        chosen, met = self._choose()
        chosen.verdict = "chosen"
        warnings = []
        if not chosen.is_int8:
            warnings.append(
                "no int8 candidate met the accuracy gates; search_space.allow_fp32 kept the model in "
                "float32 (not quantized)"
            )
        elif chosen.quantizer == "static" and not self.space.calibration_data:
            warnings.append(
                f"the chosen static int8 candidate was calibrated on {chosen.calibration}, which the "
                "accuracy gates score too (optimistic); set search_space.calibration_data to a separate split"
            )
        elif not chosen.quantized_ops:
            warnings.append("the chosen candidate has no quantized node: this model has nothing int8 can speed up")
        if not met and self.float_only and not self.space.allow_fp32:
            warnings.append(
                f"candidate(s) {', '.join(map(str, self.float_only))} met the accuracy gates only with every "
                "MatMul, Gemm, Conv and Attention in float32 (no int8 compute): not an int8 model, not chosen; "
                "set search_space.allow_fp32: true to accept a float32 model"
            )
        if not met:
            failing = [g for g in chosen.gates if g.status == "failed"]
            gate_text = ", ".join(
                f"{g.name} (closest: {'nothing' if g.value is None else format(g.value, '.4g')})" for g in failing
            )
            warnings.append(
                f"no int8 candidate met the accuracy gates after {len(self.rows) - 1} candidate(s)"
                f"{' (search budget exhausted)' if self.exhausted else ''}; failing: {gate_text}. Try: a larger "
                "--search-budget, search_space.allow_fp32: true, quantize-static with calibration data, "
                "or a recipe whose gates match what int8 can hold"
            )
        if self.exhausted:
            warnings.append(
                f"search budget of {self.config.search_budget_s:g} s exhausted after {len(self.rows) - 1} candidate(s)"
            )
        search = SearchReport(
            strategy="accuracy-aware",
            candidates=[c.record() for c in self.rows],
            chosen=chosen.id,
            met_gates=met,
            fp32_nodes=chosen.fp32_nodes,
            budget_s=self.config.search_budget_s,
            budget_exhausted=self.exhausted,
            elapsed_s=round(time.perf_counter() - self.start, 1),
            latency_shape=_shape(self.ctx.evaluator.latency_feeds),
            sensitivity=[
                NodeSensitivityRecord(node=s.name, op_type=s.op_type, error=s.error, method=s.method)
                for s in self.ranking[:30]
            ],
            ranking=self.ranking_record,
        )
        details: dict[str, Figure] = {
            "weight_type": chosen.weight_type,
            "per_channel": chosen.per_channel,
            "reduce_range": chosen.reduce_range,
            "op_types": chosen.op_types,
            "nodes_to_exclude": chosen.fp32_nodes,
            "quantized_ops": chosen.quantized_ops,
            "candidates": len(self.rows) - 1,
            "quantizer": chosen.quantizer if chosen.is_int8 else None,
            "calibrate_method": chosen.calibrate_method,
            "calibration": chosen.calibration,
            "smooth_alpha": chosen.smooth_alpha,
        }
        for cand in self.rows:  # free disk: only the chosen model is needed from here on
            if cand.source is not None:
                cand.source.unlink(missing_ok=True)
                cand.source.with_name(cand.source.name + ".data").unlink(missing_ok=True)
            if cand is not chosen and cand.is_int8 and cand.path is not None:
                cand.path.unlink(missing_ok=True)
                cand.path.with_name(cand.path.name + ".data").unlink(missing_ok=True)
        assert chosen.path is not None  # every candidate that can be chosen was written
        return PassOutcome(chosen.path, details, warnings, search=search)


def calibration_split(feeds: dict, samples: int) -> tuple[dict, str]:
    """The static candidates' calibration samples taken from the validation inputs: every other
    sample (indices 0, 2, 4, …), at most ``samples`` of them, so at least half of the validation
    set was never calibrated on; deterministic (no random draw).

    Args:
        feeds: ``{input: (N, ...) array}``, the validation inputs.
        samples: the most calibration samples to take.

    Returns:
        The calibration feeds and the description recorded in the row, e.g.
        ``validation samples 0, 2, …, 62 (32 of 64)``.
    """
    size = len(next(iter(feeds.values())))
    indices = list(range(0, size, 2))[:samples]
    shown = ", ".join(str(i) for i in indices) if len(indices) <= 4 else f"{indices[0]}, {indices[1]}, …, {indices[-1]}"
    return {k: v[indices] for k, v in feeds.items()}, f"validation samples {shown} ({len(indices)} of {size})"


def _computes_int8(cand: CandidateRun) -> bool:
    """The candidate has an int8 matrix product or convolution (a passing candidate that quantized
    only an embedding lookup, or nothing, is no int8 model: see :mod:`optkit.validation.int8_compute`)."""
    if cand.int8_compute is not None:
        return cand.int8_compute > 0
    return any(op in INT8_COMPUTE_OPS for op in cand.quantized_ops or {})


def _best_ms(cand: CandidateRun) -> float:
    """The fastest call of a scored candidate (every passing one was scored)."""
    assert cand.best_ms is not None
    return cand.best_ms


def _shape(feeds: dict) -> str:
    first = next(iter(feeds.values()))
    return "×".join(str(d) for d in first.shape)


__all__ = ["MAX_TIMED", "RANK_ROUNDS", "TIMER_FLOOR_MS", "calibration_split", "search"]
