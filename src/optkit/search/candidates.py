"""One candidate of a quantization search while it is tried: the settings, what they measured and
the model file; :meth:`CandidateRun.record` turns it into the report's
:class:`~optkit.records.search.Candidate` row."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from optkit.records.search import Candidate, CandidateGate, SpeedupInterval, Stage, Verdict


def alpha_text(alpha: float | str) -> str:
    """A smoothing alpha as the search writes it: ``0.75`` or ``per-layer``."""
    return alpha if isinstance(alpha, str) else f"{alpha:g}"


@dataclass
class CandidateRun:
    """A candidate model of the int8 search.

    Attributes:
        id: position in search order (0 = the fp32 input, for reference).
        stage: ``"fp32 input"``, ``"settings"``, ``"smoothed"``, ``"static"``, ``"op types"``,
            ``"node probe"`` (one node kept in float32 to measure its effect) or ``"fp32 fallback"``.
        weight_type / per_channel / reduce_range / op_types: the ``quantize_dynamic`` settings
            (``op_types`` None = ONNX Runtime's default list).
        fp32_nodes: nodes kept in float32 (``nodes_to_exclude``).
        quantized_ops: ``{quantized op type: count}`` in the candidate.
        int8_compute: int8 matrix products and convolutions counted in a QDQ candidate's file
            (:func:`~optkit.validation.int8_compute.int8_compute_ops`); None = read from ``quantized_ops``.
        metrics: its accuracy metrics; gates: the accuracy gates evaluated on it.
        passed: every accuracy gate held; margin: worst normalised gate margin (> 0 passes);
            margins: every gate's normalised margin, in gate order (what the ranking compares).
        latency_ms: p50 at the gated shape (ms); best_ms: fastest call there (ms, lowered by the
            ranking's rounds); size_mb: model size on disk (MB = 10^6 bytes).
        seconds: wall time to build and score it; error: why it could not be built or run.
        verdict: ``"chosen"``, ``"passed"``, ``"failed"``, ``"error"`` or ``"reference"``.
        quantizer: ``"dynamic"`` (quantize_dynamic) or ``"static"`` (quantize_static, QDQ, stage
            ``"static"``); calibrate_method / calibration: a static candidate's calibrator and samples.
        smooth_alpha / source: the SmoothQuant alpha and the smoothed fp32 model quantized (stage
            ``"smoothed"``; None = the search's input).
        smooth_mode: ``"fold"`` (scales absorbed by LayerNorms / Attention V only) or ``"mul"`` (also
            through inserted Muls); None when not smoothed.
        speedup: its speed-up over the fp32 input with a 95 % interval, once the ranking timed it.
        activations: a static candidate's activation encoding, ``"asymmetric"`` (quint8) or
            ``"symmetric"`` (qint8, zero point 0); None = not recorded (quint8, the int8 search's).
    """

    id: int
    stage: Stage
    weight_type: str | None = None
    per_channel: bool | None = None
    reduce_range: bool | None = None
    op_types: list[str] | None = None
    fp32_nodes: list[str] = field(default_factory=list)
    quantized_ops: dict[str, int] = field(default_factory=dict)
    int8_compute: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    gates: list[CandidateGate] = field(default_factory=list)
    passed: bool = False
    margin: float = float("-inf")
    margins: tuple[float, ...] = ()
    latency_ms: float | None = None
    best_ms: float | None = None
    size_mb: float | None = None
    seconds: float = 0.0
    error: str | None = None
    verdict: Verdict = "failed"
    path: Path | None = None
    quantizer: Literal["dynamic", "static"] = "dynamic"
    calibrate_method: str | None = None
    calibration: str | None = None
    smooth_alpha: float | Literal["per-layer"] | None = None
    smooth_mode: Literal["fold", "mul"] | None = None
    source: Path | None = None
    speedup: SpeedupInterval | None = None
    activations: Literal["asymmetric", "symmetric"] | None = None

    @property
    def is_int8(self) -> bool:
        """True when at least one node was quantized."""
        return self.weight_type is not None

    @property
    def fully_quantized(self) -> bool:
        """An int8 candidate with every quantizable op type (``op_types`` None) and no node kept in
        float32: what the int8 search stops at when it passes."""
        return self.is_int8 and self.op_types is None and not self.fp32_nodes

    def family(self) -> str:
        """The candidate's family in words, for the search table and the step details:
        ``dynamic`` or ``static <calibrator>``, ``+smooth α=<alpha>`` when smoothed first
        (``+smooth α=<alpha> mul`` when inserted Muls took the scales no producer could), then
        ``, op subset`` (stage ``op types``) or ``, fp32 fallback`` (nodes kept in float32, stages
        ``node probe`` and ``fp32 fallback``); ``fp32 input`` for the reference."""
        if not self.is_int8:
            return "fp32 input"
        name = f"static {self.calibrate_method}" if self.quantizer == "static" else "dynamic"
        if self.smooth_alpha is not None:
            name += f"+smooth α={alpha_text(self.smooth_alpha)}" + (" mul" if self.smooth_mode == "mul" else "")
        if self.fp32_nodes:
            return name + ", fp32 fallback"
        return name + (", op subset" if self.op_types is not None else "")

    def settings(self) -> str:
        """Short human-readable settings, e.g. ``qint8 per-channel, reduce_range, ops=MatMul``."""
        if not self.is_int8:
            return "fp32 (no quantization)"
        parts = [str(self.weight_type), "per-channel" if self.per_channel else "per-tensor"]
        if self.quantizer == "static":
            parts.insert(0, f"static QDQ {self.calibrate_method}")
            if self.activations is not None:
                parts.append(f"{self.activations} activations")
        if self.reduce_range:
            parts.append("reduce_range")
        if self.smooth_alpha is not None:
            parts.append(
                f"smoothed alpha={alpha_text(self.smooth_alpha)}" + (" with Muls" if self.smooth_mode == "mul" else "")
            )
        if self.op_types is not None:
            parts.append("ops=" + "+".join(self.op_types))
        return ", ".join(parts)

    def record(self) -> Candidate:
        """The report's row (no path; an infinite margin becomes None, seconds get 2 decimals)."""
        margin = self.margin if abs(self.margin) != float("inf") else None
        return Candidate(
            id=self.id,
            stage=self.stage,
            settings=self.settings(),
            weight_type=self.weight_type,
            per_channel=self.per_channel,
            reduce_range=self.reduce_range,
            op_types=self.op_types,
            fp32_nodes=self.fp32_nodes,
            quantized_ops=self.quantized_ops,
            metrics=dict(self.metrics),
            gates=self.gates,
            passed=self.passed,
            margin=margin,
            latency_ms=self.latency_ms,
            best_ms=self.best_ms,
            size_mb=self.size_mb,
            seconds=round(self.seconds, 2),
            error=self.error,
            verdict=self.verdict,
            quantizer=self.quantizer if self.is_int8 else None,
            calibrate_method=self.calibrate_method,
            calibration=self.calibration,
            smooth_alpha=self.smooth_alpha,
            smooth_mode=self.smooth_mode if self.smooth_alpha is not None else None,
            speedup=self.speedup,
            activations=self.activations,
            family=self.family(),
        )
