"""The recipe config of the ``quantize-dynamic`` pass (its ``run`` is :mod:`optkit.passes.quantize_dynamic`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from optkit.strict import StrictModel


def _weight_types() -> list[Literal["qint8", "quint8"]]:
    return ["qint8", "quint8"]


def _fold_only() -> list[Literal["fold", "mul"]]:
    return ["fold"]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Int8SearchSpace(StrictModel):
    """What the accuracy-aware int8 search tries (see ``docs/recipes.md``, "Accuracy-aware search",
    and :mod:`optkit.search.int8_search`).

    Fully quantized candidates first, in expected-speed order (:mod:`optkit.search.speed_order`),
    stopping at the first that meets every accuracy gate, one weight type at a time (qint8 before
    quint8): its ``per_channel`` × ``reduce_range`` dynamic settings (per-tensor before
    per-channel); then the most accurate setting of each granularity (for ``mul``, each
    ``reduce_range`` value) on the model smoothed with each of ``smooth_alphas``, for each
    ``smooth_modes`` in turn (``mul``: ``per-layer`` on every setting before the uniform alphas,
    fewer inserted Muls first); after every weight type, one static QDQ candidate per
    ``static_methods`` calibrator on the unsmoothed and on each (fold-)smoothed model. Only when
    none of them passes: ``op_type_subsets``
    leaves out one quantizable op type at a time, and ``node_fallback`` keeps nodes of the closest
    fully quantized candidate in fp32, the ``fallback_probes`` most sensitive ordered by their
    measured effect on the recipe's gates, as few as the gates allow.
    """

    weight_types: list[Literal["qint8", "quint8"]] = Field(
        default_factory=_weight_types, min_length=1, description="dynamic settings: weight types tried"
    )
    per_channel: list[bool] = Field(
        default_factory=lambda: [True, False], min_length=1, description="dynamic settings: per_channel values tried"
    )
    reduce_range: list[bool] = Field(
        default_factory=lambda: [False, True], min_length=1, description="dynamic settings: reduce_range values tried"
    )
    smooth_alphas: list[float | Literal["per-layer"]] = Field(
        default_factory=list,
        description="when no unsmoothed setting passes: SmoothQuant alphas tried (each in [0, 1], e.g. "
        "[0.5, 0.75]) with the most accurate per-tensor and per-channel setting, and with each static "
        "method; per-layer = each layer's alpha (or none) chosen for that setting by its int8 output error "
        "on real inputs (AWQ-style grid, dynamic candidates only); empty = none",
    )
    smooth_modes: list[Literal["fold", "mul"]] = Field(
        default_factory=_fold_only,
        min_length=1,
        description="how smoothed candidates are smoothed, each tried in turn: fold (scales absorbed by "
        "LayerNorms / Attention V only, free at run time), then mul (also the layers nothing can absorb, e.g. "
        "post-LN residual LayerNorms and the FFN's second MatMul, through inserted Muls: one elementwise op "
        "per layer); static candidates use fold",
    )
    static_methods: list[Literal["minmax", "percentile", "entropy"]] = Field(
        default_factory=list,
        description="static QDQ int8 candidates (quantize_static, per-channel qint8 weights) tried after the "
        "dynamic ones, one per calibration method on the unsmoothed and each smoothed model; empty = none",
    )
    calibration_data: str | None = Field(
        None,
        description="data for the static candidates' calibration (.npz/.conll/.txt); null = every other "
        "validation sample (recorded; those samples are also scored by the gates)",
    )
    calibration_samples: int = Field(64, ge=1, description="calibration samples for the static candidates")

    @field_validator("smooth_alphas", mode="before")
    @classmethod
    def _alpha_words(cls, alphas: object) -> object:
        """One message for a word other than ``per-layer`` (not one per union branch)."""
        if isinstance(alphas, list):
            for alpha in alphas:
                if isinstance(alpha, str) and alpha != "per-layer" and not _is_number(alpha):
                    raise ValueError(f"invalid alpha {alpha!r} (expected numbers in [0, 1] or 'per-layer')")
        return alphas

    @field_validator("smooth_alphas")
    @classmethod
    def _alphas_in_range(cls, alphas: list[float | str]) -> list[float | str]:
        if any(not isinstance(a, str) and not 0 <= a <= 1 for a in alphas):
            raise ValueError(f"every smoothing alpha must be in [0, 1], got {alphas}")
        return alphas

    op_type_subsets: bool = Field(True, description="also try leaving out each quantizable op type")
    node_fallback: bool = Field(True, description="keep the most sensitive nodes in fp32 when nothing passes")
    allow_fp32: bool = Field(
        False,
        description="accept a model with every node kept in fp32 when no int8 candidate passes (else a final "
        "model without int8 compute fails the int8_compute_ops gate)",
    )
    sensitivity_samples: int = Field(16, ge=1, description="validation samples used to rank node sensitivity")
    fallback_probes: int = Field(
        8,
        ge=0,
        le=64,
        description="fp32 fallback: the most locally sensitive nodes each scored alone in fp32 on the recipe's "
        "gates; they are kept in fp32 first, by measured gain in gate margin (0 = local sensitivity only)",
    )
    latency_tolerance: float = Field(
        0.05,
        ge=0,
        le=1,
        description="candidates within this fraction of the fastest (or whose speed-up interval overlaps "
        "the fastest's) count as equally fast; the most accurate, then the earliest in search order, wins "
        "(keeps the choice deterministic despite timing noise)",
    )


class QuantizeDynamicPass(StrictModel):
    """Dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``): weights are
    quantized offline, activations at run time. Works on fused models (com.microsoft ops).

    With ``search: accuracy-aware`` the settings below are ignored: optkit searches
    ``search_space`` for the fastest candidate that meets the recipe's accuracy gates.
    """

    type: Literal["quantize-dynamic"] = Field(description="selects this pass: dynamic int8 quantization")
    weight_type: Literal["qint8", "quint8"] = Field("qint8", description="int8 weight type: signed or unsigned")
    per_channel: bool = Field(True, description="one scale per output channel (more accurate)")
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI overflow")
    op_types: list[str] | None = Field(None, description="op types to quantize; null = ORT default")
    nodes_to_exclude: list[str] = Field(default_factory=list, description="node names kept in float32")
    search: Literal["off", "accuracy-aware"] = Field(
        "off", description="'accuracy-aware': search settings and fp32 fallback nodes against the accuracy gates"
    )
    search_space: Int8SearchSpace = Field(
        default_factory=Int8SearchSpace, description="what the search tries (only with search: accuracy-aware)"
    )
    search_budget_s: float = Field(
        900.0, gt=0, description="wall-time budget of the search, seconds; --search-budget overrides"
    )


QUANTIZED_OP_PREFIXES = (
    "MatMulInteger",
    "DynamicQuantize",
    "QAttention",
    "ConvInteger",
    "QGemm",
    "MatMulIntegerToFloat",
    "QEmbedLayerNormalization",
    "DynamicQuantizeLSTM",
)
