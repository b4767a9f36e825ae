"""Accuracy-aware int8: find the fastest quantized model that meets the accuracy gates.

Order (deterministic for the same model, data and recipe; the expected-speed order and its bound
are those of :mod:`optkit.search.speed_order`):

1. **Fully quantized candidates in expected-speed order, stopping at the first that passes** (every
   accuracy gate met, with int8 compute), one weight type (one kernel: qint8's U8S8, then quint8's
   U8U8) at a time: ``settings``, every ``per_channel × reduce_range`` of that weight type on ONNX
   Runtime's default op types (per-tensor before per-channel); then ``smoothed``, the most accurate
   setting of each granularity (per-tensor first; for ``mul``, each ``reduce_range`` value) on
   the model smoothed (SmoothQuant, :mod:`optkit.search.smoothquant`) with each
   ``search_space.smooth_alphas`` in order (``per-layer``: each layer's own alpha for that
   setting, :mod:`optkit.search.smooth_alpha`), for each ``search_space.smooth_modes`` in turn
   (``fold`` first: free at run time; then ``mul``: inserted Muls also smooth the layers nothing
   can absorb; its ``per-layer`` candidates, which insert the fewest Muls, on every base before
   its uniform alphas). A smoothed qint8 model runs the faster kernel, so it comes before any quint8
   setting. Last ``static``, one static QDQ candidate
   (``quantize_static``, per-channel qint8 weights, quint8 activations) per
   ``search_space.static_methods`` calibrator on the unsmoothed and then each smoothed model,
   calibrated on ``search_space.calibration_data`` or on a deterministic split of the validation
   samples (every other one, recorded in the row). The first one that passes is the choice (nothing
   after it in this order is expected faster): the ranking below only times it against the fp32
   input for the record, and no op-type or fallback candidate is tried.
2. ``op types`` (only when no fully quantized candidate passed): the most accurate dynamic
   (``settings`` or ``smoothed``) candidate with one quantizable op type left in float32 at a time;
3. ``fp32 fallback`` (only when no fully quantized candidate passed; it runs even when stage 2
   found one, because a whole op type in float32 is usually slower than a few nodes), greedy on the
   recipe's own metric: the nodes of the closest fully quantized candidate (largest gate margin,
   any family) are ranked by local sensitivity (:mod:`optkit.search.sensitivity`); the
   ``fallback_probes`` most sensitive are each kept alone in float32 and scored on the gates
   (``node probe`` rows, their measured margin and gain in the report's ``sensitivity``); the
   fallback order is the probed nodes by measured gain (ties by local sensitivity), then the
   others by local sensitivity; 1, 2, 4, … nodes of that order are kept in float32 until the
   gates hold, then a bisection between the last failing and first passing count keeps as few
   nodes in float32 as the gates allow. The probes stop once half of the budget left at their
   start is spent.

Every row names its family (:meth:`~optkit.search.candidates.CandidateRun.family`: ``dynamic``,
``dynamic+smooth α=0.5``, ``dynamic+smooth α=0.75 mul``, ``dynamic+smooth α=per-layer mul``, ``static minmax``,
``static minmax+smooth α=0.5``, ``…, op subset``, ``…, fp32 fallback``); the step details name
the chosen one (``search_family``).

Each candidate is scored by :class:`~optkit.search.evaluator.CandidateEvaluator` on the whole
validation set (its accuracy, and a first latency figure at the gated shape). The passing
candidates (the first fully quantized one alone, when one passed) are ranked with the speed gates'
statistics (:mod:`optkit.search.ranking`): the fastest :data:`MAX_TIMED` of them (by their
scoring call) and the fp32 input are timed together in :data:`RANK_ROUNDS` alternating rounds of
one block of ``evaluator.iterations`` calls each; each
candidate's speed-up over the fp32 input gets a 95 % bootstrap interval over rounds; the one with
the largest speed-up is the fastest, the candidates whose interval overlaps its interval (or within
``latency_tolerance`` plus 0.05 ms of its median) are a near-tie, and among those the most accurate
(gate margins compared worst first, leximin) wins, then the earliest in search order, so the
choice between candidates that timing cannot separate does not depend on timing. Cost: ``(timed + 1) × RANK_ROUNDS ×
(iterations + 1)`` calls at the gated shape, at most 7 × 5 × 16 = 560 (for the NER sample at
1 × 128 tokens, a few seconds), once per search, even when one candidate passes (its interval is
recorded). When nothing passes, the closest candidate (largest gate margin) is
returned with a warning; the pipeline's gates then fail and nothing is emitted. A chosen int8
model whose speed-up interval over the fp32 input lies wholly below 1.0× gets a warning
(:mod:`optkit.search.input_speed`): the speed gates compare with the source framework, not with it.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Literal

import onnx

from optkit import interrupts
from optkit.errors import PassError
from optkit.onnx_io import load_onnx, name_nodes, save_onnx
from optkit.pass_context import PassContext, PassOutcome
from optkit.recipe import QuantizeDynamicPass
from optkit.records.figures import Figure
from optkit.records.search import (
    CandidateGate,
    NodeSensitivityRecord,
    Ranking,
    SearchReport,
    SpeedupInterval,
    Stage,
)
from optkit.search.candidates import CandidateRun, alpha_text
from optkit.search.evaluator import gate_margin
from optkit.search.fallback_count import fewest_fp32_nodes
from optkit.search.input_speed import slower_than_input
from optkit.search.ort_quantize import quantize
from optkit.search.ort_static import quantize_static_qdq
from optkit.search.ranking import TIMER_FLOOR_MS, Contender, rank
from optkit.search.sensitivity import NodeSensitivity, exclusion_names, op_type_of, quantizable_nodes, rank_nodes
from optkit.search.speed_order import KERNEL_RANK, alpha_groups, dynamic_order, probe_order, smoothing_bases
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
        # (alpha, mode, weight setting for per-layer alphas) -> the smoothed fp32 model
        self._smoothed: dict[tuple, Path | None] = {}
        self.layer_alphas: dict[str, dict[str, float | None]] = {}  # per-layer choices, by setting
        self._smoothing_off: set[str] = set()  # modes that cannot smooth this model
        self._per_layer_off = False  # the per-layer probe failed once: no per-layer candidates
        self._peaks: dict = {}  # the fp32 model's activation maxima, measured once for every alpha
        self.fallback_base: int | None = None
        self.fallback_order: list[str] = []
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
        if self._fully_quantized():
            return self._outcome()  # a fully quantized candidate passed: nothing faster is left to find
        types = sorted({op_type_of(n) for n in self.nodes})
        base = self._closest(stages=("settings", "smoothed"))
        if self.space.op_type_subsets and base is not None and len(types) > 1:
            for left_out in types:
                kept = [t for t in types if t != left_out]
                self._try(
                    CandidateRun(
                        len(self.rows),
                        "op types",
                        base.weight_type,
                        base.per_channel,
                        base.reduce_range,
                        kept,
                        smooth_alpha=base.smooth_alpha,
                        smooth_mode=base.smooth_mode,
                        source=base.source,
                    )
                )
        if self.space.node_fallback:
            self._fallback()
        return self._outcome()

    def _fully_quantized(self) -> bool:
        """Try the fully quantized candidates in expected-speed order (:mod:`optkit.search.speed_order`)
        and stop at the first that passes; True when one did."""
        space = self.space
        for weight_type in sorted(set(space.weight_types), key=KERNEL_RANK.__getitem__):
            if self._kernel_family(weight_type):
                return True
        return self._static()

    def _kernel_family(self, weight_type: str) -> bool:
        """One weight type's (one kernel's) dynamic candidates: its settings, then its smoothed
        candidates (fold, then mul); True when one passed."""
        space = self.space
        for wt, pc, rr in dynamic_order([weight_type], space.per_channel, space.reduce_range):
            if _stops(self._try(CandidateRun(len(self.rows), "settings", wt, pc, rr))):
                return True
        for mode in space.smooth_modes:
            bases = smoothing_bases(self.rows, every_reduce_range=mode == "mul")
            bases = [b for b in bases if b.weight_type == weight_type]
            for group in alpha_groups(space.smooth_alphas, mode):  # mul: per-layer (fewest Muls) first
                for base in bases:
                    for alpha in group:
                        source = self._smoothed_model(alpha, mode, base)
                        if source is None:
                            continue
                        cand = CandidateRun(
                            len(self.rows),
                            "smoothed",
                            base.weight_type,
                            base.per_channel,
                            base.reduce_range,
                            smooth_alpha=alpha,
                            smooth_mode=mode,
                            source=source,
                        )
                        if _stops(self._try(cand)):
                            return True
        return False

    def _static(self) -> bool:
        """The static QDQ candidates, unsmoothed then on each (fold-)smoothed model; True when one passed."""
        space = self.space
        uniform = [a for a in space.smooth_alphas if not isinstance(a, str)]  # per-layer: dynamic only
        alphas: list[float | None] = [None, *uniform] if space.static_methods else []
        for smooth_alpha in alphas:
            source = None if smooth_alpha is None else self._smoothed_model(smooth_alpha, "fold")
            if smooth_alpha is not None and source is None:
                continue
            for method in space.static_methods:
                cand = CandidateRun(
                    len(self.rows),
                    "static",
                    "qint8",
                    True,
                    False,
                    quantizer="static",
                    calibrate_method=method,
                    smooth_alpha=smooth_alpha,
                    smooth_mode=None if smooth_alpha is None else "fold",
                    source=source,
                )
                if _stops(self._try(cand)):
                    return True
        return False

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
                    cand.source or self.path,
                    cand.path,
                    batches,
                    str(cand.calibrate_method),
                    bool(cand.per_channel),
                    None,
                    list(cand.fp32_nodes),
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

    def _smoothed_model(
        self, alpha: float | str, mode: Literal["fold", "mul"], base: CandidateRun | None = None
    ) -> Path | None:
        """The fp32 model smoothed with ``alpha`` in ``mode`` (SmoothQuant,
        :mod:`optkit.search.smoothquant`), written once and shared by every candidate that uses it;
        ``"per-layer"``: each layer's alpha chosen for ``base``'s weight setting
        (:mod:`optkit.search.smooth_alpha`), one model per setting. None when smoothing cannot run,
        nothing can take a scale in this mode (then no alpha changes the model), or the budget is spent."""
        per_layer = isinstance(alpha, str)
        setting = (base.weight_type, base.per_channel, base.reduce_range) if per_layer and base else None
        key = (alpha, mode, setting)
        if key in self._smoothed:
            return self._smoothed[key]
        if mode in self._smoothing_off or (per_layer and self._per_layer_off) or not self._budget_left():
            return None
        from optkit.search.smoothquant import plan, smooth, smoothable, smoothable_maxima

        model = load_onnx(self.path)
        batches = self.ctx.validation.batches(16)
        try:
            if not self._peaks:
                self._peaks.update(smoothable_maxima(model, batches, self.ctx.threads))
            plans = plan(model)
            if not any(smoothable(p, mode) for p in plans):
                self._smoothing_off.add(mode)  # no alpha, uniform or per layer, changes this model
                self.ctx.progress(
                    f"smoothing alpha={alpha_text(alpha)}: 0 of {len(plans)} layer(s) smoothed "
                    f"(no layer can take a scale in {mode} mode)"
                )
                return None
        except Exception as exc:  # ONNX Runtime could not run the activation probe: no smoothed rows
            self.ctx.progress(f"smoothing skipped: {_why(exc)}")
            self._smoothing_off.update(("fold", "mul"))
            return None
        alphas: float | dict[str, float | None] = 0.0 if per_layer else float(alpha)
        if per_layer:
            try:
                alphas = self._layer_alphas(model, batches, mode, setting)
            except Exception as exc:  # the per-layer probe failed: uniform alphas still run
                self.ctx.progress(f"per-layer alphas skipped: {_why(exc)}")
                self._per_layer_off = True
                return None
        try:
            layers = smooth(model, batches, alphas, self.ctx.threads, peaks=self._peaks, mode=mode)
        except Exception as exc:  # ONNX Runtime could not run the activation probe: no smoothed rows
            self.ctx.progress(f"smoothing skipped: {_why(exc)}")
            self._smoothing_off.update(("fold", "mul"))
            return None
        done = sum(layer.status == "smoothed" for layer in layers)
        muls = sum(layer.absorbed_by == "Mul" for layer in layers)
        inserted = f" ({muls} through inserted Muls)" if mode == "mul" else ""
        self.ctx.progress(f"smoothing alpha={alpha_text(alpha)}: {done} of {len(layers)} layer(s) smoothed{inserted}")
        same_as_fold = mode == "mul" and not muls and "fold" in self.space.smooth_modes
        if per_layer:  # a per-layer choice without Muls is the fold model of this setting, if it was built
            same_as_fold = same_as_fold and (alpha, "fold", setting) in self._smoothed
        if not done or same_as_fold:
            # nothing took a scale, or mul smooths exactly what fold did: no new model
            if not per_layer:
                self._smoothing_off.add(mode)
            self._smoothed[key] = None
            return None
        suffix = "-mul" if mode == "mul" else ""
        if per_layer:
            assert setting is not None
            wt, pc, rr = setting
            name = f"smoothed-layers-{wt}-{'pc' if pc else 'pt'}{'-rr' if rr else ''}{suffix}"
        else:
            name = f"smoothed-a{int(round(float(alpha) * 100)):03d}{suffix}"
        source = self.ctx.output_path(name)
        save_onnx(model, source, self.ctx.external_threshold_mb)
        self._smoothed[key] = source
        return source

    def _layer_alphas(self, model, batches: list, mode: str, setting) -> dict[str, float | None]:
        """Each layer's alpha for one weight setting (:func:`~optkit.search.smooth_alpha.choose_alphas`,
        on the first 32 samples), recorded under the setting's name for the step details."""
        from optkit.search.smooth_alpha import choose_alphas

        wt, pc, rr = setting
        choice = choose_alphas(model, batches[:2], self._peaks, wt, pc, rr, mode, self.ctx.workdir, self.ctx.threads)
        label = _setting_label(wt, pc, rr, mode)
        self.layer_alphas[label] = dict(choice.alphas)
        self.ctx.progress(f"per-layer alphas for {label}: {choice.summary()}")
        return choice.alphas

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
            return f"candidate {cand.id} [{cand.family()}] {cand.settings()}{kept}: error {cand.error}"
        gates = ", ".join(f"{g.name.split()[0]} {g.value:.4g}" for g in cand.gates if g.value is not None)
        verdict = "reference" if not cand.is_int8 else ("PASS" if cand.passed else "FAIL")
        return (
            f"candidate {cand.id} [{cand.family()}] {cand.settings()}{kept}: {gates} → {verdict}, "
            f"{cand.latency_ms:.2f} ms p50, {cand.best_ms:.2f} ms best ({cand.seconds:.0f} s)"
        )

    def _closest(self, stages: tuple[str, ...] | None = None) -> CandidateRun | None:
        """The scored int8 candidate (of ``stages``; None = any) with the largest gate margin
        (earliest wins ties)."""
        pool = [c for c in self.rows if c.is_int8 and not c.error and (stages is None or c.stage in stages)]
        return max(pool, key=lambda c: (c.margin, -c.id)) if pool else None

    # ------------------------------------------------------------------ fp32 fallback
    def _fallback(self) -> None:
        """Keep nodes of the closest fully quantized candidate in float32: the ``fallback_probes``
        most locally sensitive nodes are scored alone in float32 on the recipe's gates (``node
        probe`` rows), then kept in the order of their measured effect (:func:`probe_order`), the
        others after them by local sensitivity, as few as the gates allow (:func:`fewest_fp32_nodes`)."""
        base = self._closest(stages=FULLY_QUANTIZED)
        if base is None or not self._budget_left():
            return
        assert base.weight_type is not None  # a fully quantized row is int8
        model = load_onnx(base.source) if base.source is not None else self.model
        nodes = quantizable_nodes(model, base.op_types)
        batches = self.ctx.validation.batches(self.space.sensitivity_samples)[:1]
        self.ctx.progress(
            f"ranking {len(nodes)} node(s) by int8 sensitivity on {self.space.sensitivity_samples} "
            f"samples ({base.family()}: {base.settings()})"
        )
        try:
            self.ranking = rank_nodes(
                model,
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
        self.fallback_base = base.id
        probes = self._probe(base, names[: min(self.space.fallback_probes, limit)])
        order = probe_order(names, probes)
        self.fallback_order = order[:30]
        tried = {frozenset([name]): cand for name, cand in probes.items()}

        def passes(count: int) -> bool | None:
            cand = tried.get(frozenset(order[:count])) or self._fallback_candidate(base, order[:count])
            return None if cand is None else cand.passed

        fewest_fp32_nodes(limit, passes)

    def _probe(self, base: CandidateRun, names: list[str]) -> dict[str, CandidateRun]:
        """``{node: candidate}``: ``base`` with each of ``names`` alone kept in float32, scored by the
        evaluator. The probes stop when half of the budget left at their start is spent, so the walk
        that follows keeps the other half."""
        if names:
            self.ctx.progress(
                f"measuring {len(names)} node(s) kept alone in fp32 on the gates ({base.family()}, candidate {base.id})"
            )
        began = time.perf_counter()
        share = max(self.config.search_budget_s - (began - self.start), 0.0) / 2
        found: dict[str, CandidateRun] = {}
        for name in names:
            if found and time.perf_counter() - began > share:
                self.ctx.progress(f"node probes stopped after {len(found)}: half of the budget left was spent")
                break
            cand = self._fallback_candidate(base, [name], stage="node probe")
            if cand is None:
                break
            found[name] = cand
        return found

    def _fallback_candidate(
        self, base: CandidateRun, fp32_nodes: list[str], stage: Stage = "fp32 fallback"
    ) -> CandidateRun | None:
        return self._try(
            CandidateRun(
                len(self.rows),
                stage,
                base.weight_type,
                base.per_channel,
                base.reduce_range,
                base.op_types,
                list(fp32_nodes),
                quantizer=base.quantizer,
                calibrate_method=base.calibrate_method,
                smooth_alpha=base.smooth_alpha,
                smooth_mode=base.smooth_mode,
                source=base.source,
            )
        )

    # ------------------------------------------------------------------ choice
    def _choose(self) -> tuple[CandidateRun, bool]:
        full = [c for c in self.rows if _stops(c)]
        passing = full[:1] or [c for c in self.rows if c.passed and not c.error and c.is_int8 and _computes_int8(c)]
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
            self.ctx.progress(f"ranking timing failed ({_why(exc)}); choosing by the fastest scoring call")
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
        reference = self.ranking_record.reference if self.ranking_record is not None else None
        slower = slower_than_input(chosen.speedup, _shape(self.ctx.evaluator.latency_feeds)) if reference == 0 else None
        if met and chosen.is_int8 and slower:
            warnings.append(slower)
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
            sensitivity=[self._sensitivity_record(s) for s in self.ranking[:30]],
            ranking=self.ranking_record,
            fallback_base=self.fallback_base,
            fallback_order=self.fallback_order,
        )
        family = chosen.family()
        self.ctx.progress(f"chosen: candidate {chosen.id}, {family}")
        details: dict[str, Figure] = {
            "search_family": family,
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
            "smooth_mode": chosen.smooth_mode,
        }
        if chosen.quantizer == "static":  # quantize_static_qdq's default: no Q/DQ on the output tail
            details["float_outputs"] = True
        if chosen.smooth_alpha == "per-layer":
            label = _setting_label(chosen.weight_type, chosen.per_channel, chosen.reduce_range, chosen.smooth_mode)
            details["smooth_layer_alphas"] = self.layer_alphas.get(label)
        for source in self._smoothed.values():  # free disk: only the chosen model is needed from here on
            if source is not None:
                source.unlink(missing_ok=True)
                source.with_name(source.name + ".data").unlink(missing_ok=True)
        for cand in self.rows:
            if cand is not chosen and cand.is_int8 and cand.path is not None:
                cand.path.unlink(missing_ok=True)
                cand.path.with_name(cand.path.name + ".data").unlink(missing_ok=True)
        assert chosen.path is not None  # every candidate that can be chosen was written
        return PassOutcome(chosen.path, details, warnings, search=search)

    def _sensitivity_record(self, node: NodeSensitivity) -> NodeSensitivityRecord:
        """A node of the local ranking with its probe's measured effect, when it was probed."""
        probe = next((c for c in self.rows if c.stage == "node probe" and c.fp32_nodes == [node.name]), None)
        base = next((c for c in self.rows if c.id == self.fallback_base), None)
        margin = gain = None
        if probe is not None and not probe.error and abs(probe.margin) != float("inf"):
            margin = probe.margin
            if base is not None and abs(base.margin) != float("inf"):
                gain = probe.margin - base.margin
        return NodeSensitivityRecord(
            node=node.name,
            op_type=node.op_type,
            error=node.error,
            method=node.method,
            probe=None if probe is None else probe.id,
            margin=margin,
            gain=gain,
        )


def _setting_label(weight_type, per_channel, reduce_range, mode) -> str:
    """``"qint8 per-channel reduce_range mul"``: how a per-layer choice is named in the progress
    lines and the step details."""
    granularity = "per-channel" if per_channel else "per-tensor"
    return f"{weight_type} {granularity}{' reduce_range' if reduce_range else ''} {mode}"


def _why(exc: Exception) -> str:
    """``"RuntimeError: its first line"`` (160 characters at most) for a progress line."""
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"


#: the stages whose candidates are fully quantized (all op types, no node in float32)
FULLY_QUANTIZED = ("settings", "smoothed", "static")


def _stops(cand: CandidateRun | None) -> bool:
    """A fully quantized candidate that met every gate with int8 compute: the search's choice."""
    return cand is not None and cand.passed and not cand.error and cand.fully_quantized and _computes_int8(cand)


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
