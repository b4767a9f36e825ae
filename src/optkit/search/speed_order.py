"""The expected-speed order of the int8 search's fully quantized candidates, and the order in which
its fp32 fallback gives nodes back to float32 (greedy on the recipe's own metric).

Expected speed on ONNX Runtime's x86 CPU kernels, fastest first (the search stops at the first
fully quantized candidate that meets every accuracy gate, so this order is its choice among them):

1. **qint8 weights before quint8.** Dynamic quantization makes activations uint8, so qint8 weights
   run ORT's U8S8 kernels; ONNX Runtime's quantization guide ("Quantization on x86"; docs/
   performance/model-optimizations/quantization.md) names U8S8 the fast path on AVX2/AVX-512 (it
   uses ``VPMADDUBSW``), U8U8 the slower fallback. (Measured here: the NER sample's qint8 settings
   ran at 15.5–16.9 ms, its quint8 settings at 20.0–21.1 ms, docs/benchmarks.md.)
2. **Per-tensor before per-channel weights** (per-tensor is never slower: one scale per weight
   instead of one per output column to apply after the integer product; on this machine the two
   are within noise, so this only orders candidates the timing could not separate anyway).
3. ``reduce_range`` runs the same kernels (7-bit values in the same int8 storage): no speed
   difference, so the search space's listed order is kept (8-bit first by default).
4. **Folded smoothing costs nothing at run time** (``smooth_modes`` ``fold``: SmoothQuant changes
   only weights, LayerNorm gamma/beta and V projections, :mod:`optkit.search.smoothquant`): such a
   candidate is exactly as fast as its unsmoothed setting. It is tried after every unsmoothed
   setting of its weight type (and before the next weight type's settings: a smoothed qint8 model
   runs the faster kernel) because which settings are worth smoothing is read from their accuracy
   (:func:`smoothing_bases`): the most accurate setting of each weight type and granularity, in
   the order above, each with every ``smooth_alphas`` in order (``per-layer``: each layer's alpha
   chosen for that setting, :mod:`optkit.search.smooth_alpha`). Then the same with ``mul``
   smoothing, which also reaches the layers nothing can absorb through inserted Muls (one
   elementwise op per layer: a hair slower than folding, never slower than a fallback node); its
   bases are every ``reduce_range`` value of each weight type and granularity (below). Among the
   ``mul`` candidates the ``per-layer`` ones come first, for every base, then the uniform alphas
   (:func:`alpha_groups`): a per-layer model inserts a Mul only where it cuts that layer's int8
   error (:mod:`optkit.search.smooth_alpha`), so its Muls are a subset of any uniform alpha's,
   which puts one on every layer no producer absorbs. (Measured on a CPU with AVX-512 VNNI:
   MiniLM's α=0.75 mul model, 18 Muls, ran at 0.93× the per-tensor full-int8 model,
   docs/benchmarks.md.)
5. **Static QDQ last.** Static quantization saves the run-time activation quantization
   (``DynamicQuantizeLinear``: a min/max pass over every activation), but ORT's QDQ quantizer has no
   form of the fused ``Attention`` (``onnxruntime/quantization/registry.py``, ``QDQRegistry``), so on
   a fused transformer the attention projections stay float32, while dynamic quantization turns
   them into ``QAttention``; ORT's guide recommends dynamic quantization for transformers and static
   for CNNs for this reason. Static candidates: per-channel qint8 weights, quint8 activations, one
   per calibrator on the unsmoothed model, then on each smoothed model.

Bound on the fully quantized candidates: ``D = |weight_types|·|per_channel|·|reduce_range|`` dynamic
settings + ``|weight_types|·|per_channel|·|smooth_alphas|`` fold-smoothed + ``D·|smooth_alphas|``
mul-smoothed + ``|static_methods|·(1 + |uniform smooth_alphas|)`` static; for ``transformer-int8``
and ``ner-int8`` (2·2·2, α = 0.5, 0.75, per-layer, fold and mul, MinMax) 8 + 12 + 24 + 3 = 47,
each a few seconds on the sample models (docs/benchmarks.md), within their 900 s
``search_budget_s``; the search stops at the first that passes.

fp32 fallback (greedy on the true metric, :func:`probe_order`): the local sensitivity
(:mod:`optkit.search.sensitivity`) only says how much quantizing a node perturbs that node's own
output; what the recipe gates is the model's end metric. So the ``fallback_probes`` (K, default 8)
most locally sensitive nodes are each kept alone in float32 on the closest fully quantized
candidate and scored with the recipe's gates on the validation set (``node probe`` rows: K extra
candidates, each stopped by the search budget). The fallback then keeps nodes in float32 in the
order of their measured gain (the probe's normalised gate margins compared worst first, leximin;
ties by local sensitivity), the nodes not probed after them by local sensitivity, and the
doubling-and-bisection walk (:func:`~optkit.search.fallback_count.fewest_fp32_nodes`) finds how few
of that order suffice.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Literal

from optkit.search.candidates import CandidateRun

#: a smoothing alpha of ``search_space.smooth_alphas``
Alpha = float | Literal["per-layer"]

#: weight type -> kernel rank on x86 (0 = U8S8, the fast one)
KERNEL_RANK = {"qint8": 0, "quint8": 1}


def dynamic_order(
    weight_types: Sequence[str], per_channel: Sequence[bool], reduce_range: Sequence[bool]
) -> list[tuple[str, bool, bool]]:
    """Every ``(weight_type, per_channel, reduce_range)`` of the search space, fastest expected
    first: qint8 before quint8, per-tensor before per-channel, otherwise the listed order (a
    stable sort of the product).

    Raises:
        KeyError: a weight type other than ``qint8`` / ``quint8`` (the config allows no other).
    """
    combos = list(itertools.product(weight_types, per_channel, reduce_range))
    return sorted(combos, key=lambda c: (KERNEL_RANK[c[0]], bool(c[1])))


def alpha_groups(alphas: Sequence[Alpha], mode: str) -> list[list[Alpha]]:
    """The ``smooth_alphas`` of one smoothing mode in the groups the search tries them in, fastest
    expected group first; each group is tried on every base before the next group.

    ``fold``: one group, the listed order (a folded model is as fast as its unsmoothed setting,
    whatever the alpha). ``mul``: ``per-layer`` first, then the uniform alphas in their listed
    order (a per-layer model's inserted Muls are a subset of a uniform alpha's, module docstring,
    item 4). Empty groups are left out.

    >>> alpha_groups([0.5, 0.75, "per-layer"], "mul")
    [['per-layer'], [0.5, 0.75]]
    """
    if mode != "mul":
        return [list(alphas)] if alphas else []
    per_layer: list[Alpha] = [a for a in alphas if isinstance(a, str)]
    uniform: list[Alpha] = [a for a in alphas if not isinstance(a, str)]
    return [group for group in (per_layer, uniform) if group]


def smoothing_bases(rows: Sequence[CandidateRun], every_reduce_range: bool = False) -> list[CandidateRun]:
    """The unsmoothed dynamic settings worth smoothing: the most accurate scored ``settings`` row
    (largest worst gate margin, the earliest on a tie; so the better ``reduce_range`` value) of each
    weight type and granularity, in expected-speed order (qint8 per-tensor, qint8 per-channel,
    quint8 per-tensor, quint8 per-channel). One base per weight type, not only the most accurate
    setting overall, because the weight type decides the kernel (U8S8 vs U8U8, above): a quint8
    setting a hair more accurate unsmoothed must not keep the faster qint8 one from being smoothed.

    With ``every_reduce_range`` (``mul`` smoothing) each weight type and granularity gives one base
    per ``reduce_range`` value scored, the more accurate first: mul smoothing moves every layer's
    activation outliers into its weight rows, and on a CPU without VNNI ORT's U8S8 kernel adds
    pairs of u8·s8 products in saturating int16 (``VPMADDUBSW``), which full-range 8-bit weights
    can overflow and 7-bit ones cannot (ORT's quantization guide, "reduce_range"). So the
    unsmoothed ranking of the two values does not carry over (measured on the NER sample: 8-bit
    per-channel is more accurate unsmoothed, 7-bit once mul-smoothed, docs/benchmarks.md)."""
    bases = []
    for weight_type in sorted(KERNEL_RANK, key=KERNEL_RANK.__getitem__):
        for per_channel in (False, True):
            pool = [
                c
                for c in rows
                if c.stage == "settings"
                and not c.error
                and c.per_channel is per_channel
                and c.weight_type == weight_type
            ]
            ranked = sorted(pool, key=lambda c: (-c.margin, c.id))
            if every_reduce_range:
                bases += [next(c for c in ranked if c.reduce_range is rr) for rr in _in_order(ranked)]
            elif ranked:
                bases.append(ranked[0])
    return bases


def _in_order(ranked: Sequence[CandidateRun]) -> list[bool]:
    """The ``reduce_range`` values of ``ranked``, each once, in its order."""
    seen: list[bool] = []
    for cand in ranked:
        if cand.reduce_range not in seen:
            seen.append(bool(cand.reduce_range))
    return seen


def probe_order(local: Sequence[str], probes: dict[str, CandidateRun]) -> list[str]:
    """The order in which the fp32 fallback keeps nodes in float32.

    Args:
        local: every quantizable node, most locally sensitive first.
        probes: ``{node: its node-probe candidate}`` for the nodes scored alone in float32 (an
            error row counts as no gain at all).

    Returns:
        The probed nodes by measured effect (their probe's normalised gate margins sorted worst
        first and compared in that order, larger first; ties by local sensitivity), then the other
        nodes of ``local`` in its order.
    """
    rank = {name: i for i, name in enumerate(local)}

    def measured(name: str) -> tuple[float, ...]:
        cand = probes[name]
        if cand.error or not cand.margins:
            return (float("-inf"),)
        return tuple(sorted(float("-inf") if m != m else m for m in cand.margins))

    probed = sorted((n for n in local if n in probes), key=lambda n: (_negated(measured(n)), rank[n]))
    return probed + [n for n in local if n not in probes]


def _negated(margins: tuple[float, ...]) -> tuple[float, ...]:
    """Sort key: larger margins (leximin) first."""
    return tuple(-m for m in margins)


__all__ = ["KERNEL_RANK", "alpha_groups", "dynamic_order", "probe_order", "smoothing_bases"]
