"""Per-layer SmoothQuant strength: for every smoothable activation ``X`` choose, from a grid, the
``alpha`` (or no smoothing at all) whose int8 product is closest to the fp32 one on real inputs.

One ``alpha`` for the whole model (the SmoothQuant paper's choice, Xiao et al. 2023) is a
compromise: layers whose activations have strong outlier channels want a high ``alpha``, others
lose accuracy when their weights take on the scale. Like AWQ's per-layer grid search of the scale
exponent (Lin et al. 2024, "AWQ: Activation-aware Weight Quantization", arXiv:2306.00978, §3.2:
minimise ``||Q(W diag(s)) (diag(s)^-1 X) - W X||`` over a grid) and Intel Neural Compressor's
SmoothQuant ``alpha="auto"`` (which scores each alpha by the quantized block output's loss), every
layer here is scored by the relative output error

    ``e(alpha) = ||fq_a(X / s) @ fq_w(diag(s) W_i) - X @ W_i||^2 / ||X @ W_i||^2``, summed over the consumers ``i``,

with ``s = s(alpha)`` the paper's eq. 4 scale (:func:`~optkit.search.smoothquant.smoothing_scale`)
and ``fq_a`` / ``fq_w`` ONNX Runtime's dynamic-int8 quantize-dequantize of the activation (one
uint8 scale per tensor) and of the weights at the candidate's settings
(:mod:`~optkit.search.fake_quant`). The option "unsmoothed" (``s = 1``) is scored too; a layer that
would need an inserted ``Mul`` (no producer absorbs the scale) is smoothed only when that lowers its
error by at least ``min_gain`` (the Mul costs run time; one that folds is free).

The score is local, so the search still judges the smoothed candidate by the recipe's own metric;
this only picks its alphas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from optkit.runners.base import Feeds
from optkit.search.fake_quant import fake_quant_activation, fake_quant_weight
from optkit.search.probe import run_probe, with_outputs
from optkit.search.smoothquant import plan, smoothable, smoothing_scale

#: the alphas tried for each layer (besides leaving it unsmoothed)
DEFAULT_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)


#: token rows of one batch whose products are scored (evenly spaced when a batch has more): bounds
#: the cost on long sequences and wide models (a 16 × 128 batch is scored whole)
MAX_ROWS = 2048


def _rows(count: int) -> slice | np.ndarray:
    return slice(None) if count <= MAX_ROWS else np.linspace(0, count - 1, MAX_ROWS).astype(np.int64)


@dataclass
class AlphaChoice:
    """The per-layer choice for one weight setting.

    Attributes:
        alphas: ``{activation name: alpha, or None for unsmoothed}``, for :func:`~optkit.search.smoothquant.smooth`.
        errors: ``{activation name: {"none" or alpha as text: relative output error}}``, as measured.
    """

    alphas: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> str:
        """``"12 layers: α 0.5×3, 0.8×7, unsmoothed×2"``."""
        counts: dict[str, int] = {}
        for value in self.alphas.values():
            key = "unsmoothed" if value is None else f"{value:g}"
            counts[key] = counts.get(key, 0) + 1
        parts = [f"{k}×{v}" for k, v in sorted(counts.items(), key=lambda kv: (kv[0] == "unsmoothed", kv[0]))]
        return f"{len(self.alphas)} layers: α " + ", ".join(parts)


def choose_alphas(
    model: onnx.ModelProto,
    batches: Sequence[Feeds],
    peaks: dict[str, np.ndarray],
    weight_type: str,
    per_channel: bool,
    reduce_range: bool,
    mode: str,
    workdir: Path,
    threads: int = 2,
    grid: Sequence[float] = DEFAULT_GRID,
    min_gain: float = 0.1,
) -> AlphaChoice:
    """Choose each smoothable layer's alpha (module docs) for one dynamic-int8 weight setting.

    Args:
        model: the fp32 (fused) model, unsmoothed; not changed.
        batches: real inputs (a few batches: only activations are needed).
        peaks: per-channel ``max|X|`` of every smoothable activation
            (:func:`~optkit.search.smoothquant.activation_max`, the cache ``smooth`` fills).
        weight_type / per_channel / reduce_range: the ``quantize_dynamic`` setting being smoothed.
        mode: ``"fold"`` or ``"mul"``: which layers may be smoothed (as in ``smooth``).
        workdir: where the probe model is written.
        grid: alphas in [0, 1] to try.
        min_gain: the relative error reduction an inserted ``Mul`` must buy (0.1: 10 % lower error).

    Returns:
        An :class:`AlphaChoice` of every smoothable layer with a maximum in ``peaks`` (the others
        are not in it, so :func:`~optkit.search.smoothquant.smooth` leaves them unsmoothed).

    Raises:
        ValueError: an alpha of ``grid`` outside [0, 1]. ONNX Runtime errors of the probe propagate.
    """
    if any(not 0 <= a <= 1 for a in grid):
        raise ValueError(f"alphas must be in [0, 1], got {list(grid)}")
    inits = {t.name: t for t in model.graph.initializer}
    layers = []
    for item in plan(model):
        if not smoothable(item, mode) or item.layer.tensor not in peaks:
            continue
        weights = [numpy_helper.to_array(inits[c.input[1]]).astype(np.float32) for c in item.consumers]
        w_max = np.abs(np.concatenate(weights, axis=1)).max(axis=1).astype(np.float64)
        options: dict[str, np.ndarray | None] = {"none": None}
        for alpha in grid:
            options[f"{alpha:g}"] = smoothing_scale(peaks[item.layer.tensor], w_max, alpha)
        layers.append((item.layer.tensor, item.layer.reason is None, weights, options))
    squared = {t: dict.fromkeys(opts, 0.0) for t, _, _, opts in layers}
    norms = dict.fromkeys(squared, 0.0)

    def visit(tensors: dict[str, np.ndarray]) -> None:
        for tensor, _, weights, options in layers:
            x = np.asarray(tensors[tensor], dtype=np.float32).reshape(-1, weights[0].shape[0])
            rows = _rows(x.shape[0])
            exact = [x[rows] @ w for w in weights]
            norms[tensor] += sum(float(np.square(y).sum()) for y in exact)
            for key, scale in options.items():
                s = np.ones(x.shape[1], np.float32) if scale is None else scale
                # the whole tensor sets the dynamic range, as in ONNX Runtime; the rows scored are a subset
                xq = fake_quant_activation(x / s).astype(np.float32)[rows]
                for w, y in zip(weights, exact, strict=True):
                    wq = fake_quant_weight(w * s[:, None], weight_type, per_channel, reduce_range).astype(np.float32)
                    squared[tensor][key] += float(np.square(xq @ wq - y).sum())

    if layers:
        probe = workdir / "alpha-probe.onnx"
        try:
            run_probe(with_outputs(model, [t for t, *_ in layers]), probe, list(batches), threads, visit)
        finally:
            probe.unlink(missing_ok=True)
            probe.with_name(probe.name + ".data").unlink(missing_ok=True)
    choice = AlphaChoice()
    for tensor, folds, _, options in layers:
        errors = {k: v / max(norms[tensor], 1e-30) for k, v in squared[tensor].items()}
        choice.errors[tensor] = errors
        best = min(options, key=lambda k: (errors[k], k != "none"))
        needed = 0.0 if folds else min_gain
        if best != "none" and errors[best] <= (1 - needed) * errors["none"]:
            choice.alphas[tensor] = float(best)
        else:
            choice.alphas[tensor] = None
    return choice
