"""Simplify with onnxsim (constant folding, shape inference and graph optimizers).

If onnxsim raises or its own check fails, the input model is kept and the reason recorded:
simplification is an optimisation, never a reason to lose a working model.
"""

from __future__ import annotations

from pathlib import Path

from optkit.onnx_io import load_onnx, save_onnx
from optkit.pass_context import PassContext, PassOutcome
from optkit.recipe import SimplifyPass


def run(model_path: Path, config: SimplifyPass, ctx: PassContext) -> PassOutcome:
    """Run ``onnxsim.simplify``; returns the simplified model or the unchanged input (``skipped``)."""
    import onnxsim

    model = load_onnx(model_path)
    before = len(model.graph.node)
    try:
        simplified, ok = onnxsim.simplify(
            model,
            perform_optimization=config.perform_optimization,
            skipped_optimizers=config.skipped_optimizers or None,
        )
    except Exception as exc:  # onnxsim raises many types (RuntimeError, onnx errors, ...)
        reason = f"onnxsim failed, model kept unchanged: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return PassOutcome(model_path, {"nodes_before": before}, [reason], skipped=reason)
    if not ok:
        reason = "onnxsim's check failed (outputs differ), model kept unchanged"
        return PassOutcome(model_path, {"nodes_before": before}, [reason], skipped=reason)
    out = ctx.output_path("simplify")
    save_onnx(simplified, out, ctx.external_threshold_mb)
    return PassOutcome(
        out,
        {
            "nodes_before": before,
            "nodes_after": len(simplified.graph.node),
            "perform_optimization": config.perform_optimization,
        },
    )
