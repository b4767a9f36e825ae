"""Simplify with onnxsim (constant folding, shape inference and graph optimizers).

If onnxsim raises or its own check fails, the input model is kept and the reason recorded:
simplification is an optimisation, never a reason to lose a working model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from optkit.onnx_io import load_onnx, save_onnx
from optkit.passes.base import PassContext, PassOutcome
from optkit.strict import StrictModel


class SimplifyPass(StrictModel):
    """onnxsim (constant folding, shape inference, graph optimizers). If onnxsim fails, the model
    is kept unchanged and the reason is recorded in the report."""

    type: Literal["simplify"] = Field(description="selects this pass: onnxsim simplification")
    perform_optimization: bool = Field(
        True,
        description="run onnxsim's graph optimizers; transformer recipes turn them off because "
        "MatMul+Add→Gemm rewrites hide the patterns ORT's attention fusion matches",
    )
    skipped_optimizers: list[str] = Field(
        default_factory=list, description="names of onnxoptimizer passes onnxsim skips "
        "(e.g. fuse_matmul_add_bias_into_gemm); [] = run them all")


def run(model_path: Path, config: SimplifyPass, ctx: PassContext) -> PassOutcome:
    """Run ``onnxsim.simplify``; returns the simplified model or the unchanged input (``skipped``)."""
    import onnxsim

    model = load_onnx(model_path)
    before = len(model.graph.node)
    try:
        simplified, ok = onnxsim.simplify(model, perform_optimization=config.perform_optimization,
                                          skipped_optimizers=config.skipped_optimizers or None)
    except Exception as exc:  # onnxsim raises many types (RuntimeError, onnx errors, ...)
        reason = f"onnxsim failed, model kept unchanged: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return PassOutcome(model_path, {"nodes_before": before}, [reason], skipped=reason)
    if not ok:
        reason = "onnxsim's check failed (outputs differ), model kept unchanged"
        return PassOutcome(model_path, {"nodes_before": before}, [reason], skipped=reason)
    out = ctx.output_path("simplify")
    save_onnx(simplified, out, ctx.external_threshold_mb)
    return PassOutcome(out, {"nodes_before": before, "nodes_after": len(simplified.graph.node),
                             "perform_optimization": config.perform_optimization})
