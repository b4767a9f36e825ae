"""SmoothQuant activation smoothing (exact in fp32); the transform is :mod:`optkit.search.smoothquant`.

Activation ranges come from ``calibration_data`` when given, else from the first
``calibration_samples`` validation inputs (smoothing only rescales, exactly, so using the validation
inputs cannot make accuracy figures optimistic in fp32; it only tunes the scales to them).
"""

from __future__ import annotations

from pathlib import Path

from optkit.errors import PassError
from optkit.onnx_io import load_onnx, op_counts, save_onnx
from optkit.pass_context import PassContext, PassOutcome
from optkit.recipe import SmoothPass
from optkit.records.figures import Figure
from optkit.search.smoothquant import smooth

BATCH = 16


def run(model_path: Path, config: SmoothPass, ctx: PassContext) -> PassOutcome:
    """Smooth every layer whose producer can absorb the scale (and, with ``mode: mul``, every other
    layer through an inserted Mul); ``details`` has per-layer records (``layers``: tensor, producer
    op, consumers, smoothed/skipped and why, what absorbed the scale, scale range) and counts.

    Raises:
        PassError: no calibration or validation data, or ONNX Runtime cannot run the model.
    """
    if config.calibration_data:
        from optkit.validation.data import load_validation_set

        feeds = load_validation_set(config.calibration_data, ctx.info, config.calibration_samples, 128).feeds
        source = config.calibration_data
    elif ctx.validation is not None:
        feeds = {k: v[: config.calibration_samples] for k, v in ctx.validation.feeds.items()}
        source = "validation data"
    else:
        raise PassError("smooth needs data for the activation ranges", "set smooth.calibration_data (.npz/.conll/.txt)")
    size = len(next(iter(feeds.values())))
    batches = [{k: v[i : i + BATCH] for k, v in feeds.items()} for i in range(0, size, BATCH)]
    model = load_onnx(model_path)
    ops_before = op_counts(model)
    try:
        layers = smooth(model, batches, config.alpha, ctx.threads, config.min_scale, mode=config.mode)
    except Exception as exc:  # ONNX Runtime raises assorted errors on a model it cannot run
        raise PassError(
            f"smoothing could not measure activations: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            "remove the smooth pass, or run it right after fuse",
        ) from exc
    smoothed = [layer for layer in layers if layer.status == "smoothed"]
    inserted = sum(layer.absorbed_by == "Mul" for layer in smoothed)
    details: dict[str, Figure] = {
        "alpha": config.alpha,
        "mode": config.mode,
        "calibration": source,
        "calibration_samples": size,
        "smoothed": len(smoothed),
        "skipped": len(layers) - len(smoothed),
        "inserted_muls": inserted,
        "layers": [layer.record() for layer in layers],
    }
    if not smoothed:
        reason = "no layer can absorb a smoothing scale" + (
            f" ({layers[0].reason}, …)" if layers else " (no MatMul/Attention with constant weights)"
        )
        return PassOutcome(model_path, details, [], skipped=reason)
    # smoothing changes weights only; the graph's ops change only by the Muls it inserted (mode mul)
    expected = dict(ops_before)
    if inserted:
        expected["Mul"] = expected.get("Mul", 0) + inserted
    assert op_counts(model) == expected
    out = ctx.output_path("smooth")
    save_onnx(model, out, ctx.external_threshold_mb)
    return PassOutcome(out, details)
