"""The recipe config of the ``smooth`` pass (its ``run`` is :mod:`optkit.passes.smooth`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from optkit.strict import StrictModel


class SmoothPass(StrictModel):
    """SmoothQuant (Xiao et al. 2023, arXiv:2211.10438): migrate activation outliers into the weights
    before int8 quantization, exactly in fp32.

    Per input channel ``j`` of a MatMul (or fused ``Attention``) with constant weights, the scale
    ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` (activations measured on the calibration or
    validation data) divides the producer of ``X`` (LayerNormalization / SkipLayerNormalization
    gamma and beta, or the V projection of a fused Attention) and multiplies row ``j`` of the
    weights. Run it after ``fuse`` and before ``quantize-dynamic`` / ``quantize-static``. With
    ``mode: fold`` a layer whose input also feeds anything else (a residual Add, a graph output) or
    whose producer cannot absorb a scale (GELU) is left unsmoothed and the reason is recorded; with
    ``mode: mul`` such a layer gets an explicit ``Mul(X, 1/s)`` before its MatMuls (exact, one
    elementwise op per layer at run time).
    """

    type: Literal["smooth"] = Field(description="selects this pass: SmoothQuant activation smoothing (exact in fp32)")
    alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="migration strength: 0 = scales from the weights only, 1 = from the activations only "
        "(SmoothQuant's default 0.5)",
    )
    mode: Literal["fold", "mul"] = Field(
        "fold",
        description="fold: only layers whose producer (LayerNorm, Attention V) absorbs the scale, free at run "
        "time; mul: also every other layer, through an inserted Mul by 1/s before its MatMuls (one elementwise "
        "op per layer; reaches post-LN residual LayerNorms and the FFN's second MatMul)",
    )
    calibration_data: str | None = Field(
        None, description=".npz/.conll/.txt for the activation ranges; null = the validation data"
    )
    calibration_samples: int = Field(64, ge=1, description="samples run to measure the per-channel max |X|")
    min_scale: float = Field(
        1e-4, gt=0, description="scales are clipped to [min_scale, 1/min_scale] (keeps fp32 exact and finite)"
    )
