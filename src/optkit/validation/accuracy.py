"""Accuracy of the artifact against the source model on the same inputs.

Definitions (``a`` = artifact output, ``s`` = source output, masked to real tokens when the output's
first two axes match ``attention_mask``):

* ``max_abs_error`` = max |a − s| over every output.
* ``max_rel_error`` = max |a − s| / max(|s|, 1e-6) (Polygraphy's relative error; dominated by
  near-zero references, so gate on it with care).
* ``cosine_min`` / ``cosine_mean``: cosine similarity of each output row (the last axis: a token's
  logits, or a sample's features) between a and s.
* ``pooled_cosine_min`` / ``pooled_cosine_mean``: for a (batch, tokens, features) output (e.g. a
  sentence encoder's ``last_hidden_state``), each sample's vector is mean-pooled over its real tokens
  (``attention_mask``, as sentence-transformers does), then a and s are compared by cosine per
  sample: the "cosine of mean-pooled embeddings" of every sentence.
* ``tag_agreement`` / ``label_agreement``: fraction of rows whose argmax over the last axis agrees
  (tokens for token classification, samples for sequence classification); for tabular classifiers
  (scikit-learn) ``label_agreement`` compares the predicted ``label`` outputs, and every disagreeing
  sample is listed (``disagreements``); the same holds for scikit-learn outlier detectors
  (``outlier-detection``: inlier/outlier labels) and clusterers (``clustering``: cluster ids), whose
  ``max_abs_error`` / ``max_rel_error`` then measure their ``scores`` (decision function, or the
  distances to the cluster centres).
* ``top1_agreement``: the lowest, over every float output, fraction of rows whose argmax over the
  last axis agrees: each real token's predicted word for a masked LM's ``logits`` (N, tokens,
  vocabulary); each sample's answer start and answer end for question answering's ``start_logits`` /
  ``end_logits`` (N, tokens), whichever agrees less; each sample's label for a classifier.
* ``accuracy_source`` / ``accuracy_artifact``: fraction of correct labels against gold labels
  (``y`` in an ``.npz``), when given.
* ``nonfinite_outputs``: count of NaN/Inf values in the artifact's outputs.
* ``entity_f1_source`` / ``entity_f1_artifact``: seqeval entity F1 (0–100 points) against the
  gold tags; ``entity_f1_drop`` = source − artifact, in points.

For the report's plots (not gates): each float output's ``error_histogram`` (counts of |a − s| in
the fixed half-decade bins :data:`ERROR_BIN_EDGES`), ``tag_flips`` (token classification: which
predicted tag of the source became which tag of the artifact, on real tokens, with counts) and
``entity_f1`` (per entity type: source and artifact F1 in points, gold support).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optkit.errors import PassError
from optkit.io_spec import ModelInfo
from optkit.runners.base import Feeds
from optkit.validation.data import ValidationSet
from optkit.validation.ner import decode_tags, entity_f1, entity_f1_by_type
from optkit.validation.outputs import match_outputs

#: tasks whose first output is a predicted label per sample (scikit-learn classifiers, outlier
#: detectors, clusterers), compared by equality; their other outputs are compared as floats
LABEL_TASKS = frozenset({"classification", "outlier-detection", "clustering"})

#: bin edges of the |artifact − source| histograms: 0, then half decades from 1e-9 to 1e3 (the
#: last bin also holds larger and infinite differences)
ERROR_BIN_EDGES: list[float] = [0.0] + [float(10 ** (k / 2)) for k in range(-18, 7)]

#: at most this many distinct (source tag, artifact tag) flips are kept, most frequent first
MAX_TAG_FLIPS = 30


@dataclass
class OutputComparison:
    """Figures for one output tensor (errors in the output's own units)."""

    name: str
    shape: list[int]
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float
    cosine_min: float
    cosine_mean: float
    argmax_agreement: float
    nonfinite: int
    #: ``{"edges": ERROR_BIN_EDGES, "counts": [...]}``: |a − s| per element (NaN left out)
    error_histogram: dict | None = None


@dataclass
class AccuracyReport:
    """Every accuracy figure of one comparison.

    Attributes:
        metrics: ``{metric name: value}`` for the gate-able metrics (see the module docstring).
        unavailable: ``{metric name: reason}`` for metrics that cannot be computed on this data.
        outputs: per-output figures.
        samples: number of validation samples compared.
        disagreements: label tasks: each sample whose label differs (sample, source, artifact, diff).
        tag_flips: token classification: ``{"source": tag, "artifact": tag, "count": n}`` per
            distinct flip of the predicted tag on real tokens (most frequent first, at most
            :data:`MAX_TAG_FLIPS`).
        entity_f1: NER with gold tags: ``{type: {"source": F1, "artifact": F1, "support": n}}``,
            F1 in points (0–100).
    """

    metrics: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    outputs: list[OutputComparison] = field(default_factory=list)
    samples: int = 0
    disagreements: list[dict] = field(default_factory=list)
    tag_flips: list[dict] = field(default_factory=list)
    entity_f1: dict[str, dict] = field(default_factory=dict)


def concat_outputs(batches: list[Feeds]) -> Feeds:
    """Concatenate per-batch outputs along axis 0."""
    return {k: np.concatenate([b[k] for b in batches], axis=0) for k in batches[0]}


def compare(source: Feeds, artifact: Feeds, vset: ValidationSet, info: ModelInfo) -> AccuracyReport:
    """Compare artifact outputs with source outputs (matched by name, see
    :func:`~optkit.validation.outputs.match_outputs`; both concatenated over all validation samples)
    and compute task metrics.

    Args:
        source / artifact: ``{output name: array (N, ...)}``.
        vset: the validation inputs (attention mask, gold tags).
        info: task and labels of the model.
    """
    report = AccuracyReport(samples=vset.size)
    mask = vset.feeds.get("attention_mask")
    pairs = [((name, source[name]), artifact[art]) for name, art in match_outputs(source, artifact, PassError)]
    for (name, s), a in pairs:
        if np.issubdtype(s.dtype, np.floating):
            report.outputs.append(_compare_one(name, s, a, mask))
    if info.task in LABEL_TASKS:
        _label_outputs(
            report, pairs, vset, "max_probability_diff" if info.task == "classification" else "max_score_diff"
        )
        return report
    outs = report.outputs
    report.metrics["max_abs_error"] = max(o.max_abs_error for o in outs)
    report.metrics["max_rel_error"] = max(o.max_rel_error for o in outs)
    report.metrics["cosine_min"] = min(o.cosine_min for o in outs)
    report.metrics["cosine_mean"] = float(np.mean([o.cosine_mean for o in outs]))
    report.metrics["nonfinite_outputs"] = float(sum(o.nonfinite for o in outs))
    primary = outs[0]
    agreements = [o.argmax_agreement for o in outs if not np.isnan(o.argmax_agreement)]
    if agreements:
        report.metrics["top1_agreement"] = min(agreements)
    else:
        report.unavailable["top1_agreement"] = "every output has one value per row: no argmax"
    pooled = _pooled_cosine(pairs[0][0][1], pairs[0][1], mask)
    if pooled is None:
        for metric in ("pooled_cosine_min", "pooled_cosine_mean"):
            report.unavailable[metric] = "needs a (batch, tokens, features) output and an attention_mask"
    else:
        report.metrics["pooled_cosine_min"], report.metrics["pooled_cosine_mean"] = (
            float(pooled.min()),
            float(pooled.mean()),
        )
    if info.task == "token-classification":
        report.metrics["tag_agreement"] = primary.argmax_agreement
        report.tag_flips = tag_flips(pairs[0][0][1], pairs[0][1], mask, info.labels)
        report.unavailable["label_agreement"] = "token classification: use tag_agreement"
    elif info.task == "sequence-classification" or (len(primary.shape) == 2 and primary.shape[-1] > 1):
        report.metrics["label_agreement"] = primary.argmax_agreement
        report.unavailable["tag_agreement"] = "not a token-classification model"
        (_, src), art = pairs[0]
        _gold_accuracy(report, src.argmax(-1), art.argmax(-1), vset)
    else:
        for metric in ("tag_agreement", "label_agreement"):
            report.unavailable[metric] = f"task is {info.task or 'unknown'}, not classification"
    _entity_f1(report, pairs[0][0][1], pairs[0][1], vset, info)
    return report


def _label_outputs(report: AccuracyReport, pairs, vset: ValidationSet, diff_key: str = "max_probability_diff") -> None:
    """Tabular classifiers, detectors and clusterers: label agreement on the label output,
    disagreements listed (with the largest difference of the second output, named ``diff_key``),
    float metrics on the probabilities or scores, accuracy against gold labels when given."""
    (_, src_label), art_label = pairs[0]
    src_label, art_label = np.asarray(src_label).ravel(), np.asarray(art_label).ravel()
    differ = np.flatnonzero(src_label != art_label)
    report.metrics["label_agreement"] = 1.0 - len(differ) / max(len(src_label), 1)
    probs = [(s, a) for (_, s), a in pairs[1:]]
    report.disagreements = [
        {
            "sample": int(i),
            "source": src_label[i].item(),
            "artifact": art_label[i].item(),
            diff_key: float(np.abs(probs[0][1][i] - probs[0][0][i]).max()) if probs else None,
        }
        for i in differ
    ]
    outs = report.outputs
    report.metrics["max_abs_error"] = max((o.max_abs_error for o in outs), default=0.0)
    report.metrics["max_rel_error"] = max((o.max_rel_error for o in outs), default=0.0)
    report.metrics["nonfinite_outputs"] = float(sum(o.nonfinite for o in outs))
    for metric in ("tag_agreement", "cosine_min", "cosine_mean", "entity_f1_drop"):
        report.unavailable[metric] = "not computed for tabular classifiers, detectors and clusterers"
    _gold_accuracy(report, src_label, art_label, vset)


def _gold_accuracy(report: AccuracyReport, src_labels: np.ndarray, art_labels: np.ndarray, vset: ValidationSet) -> None:
    """``accuracy_source`` / ``accuracy_artifact`` against the gold labels, when the data has them."""
    if vset.gold_labels is not None:
        gold = np.asarray(vset.gold_labels).ravel()
        report.metrics["accuracy_source"] = float(np.mean(np.asarray(src_labels).ravel() == gold))
        report.metrics["accuracy_artifact"] = float(np.mean(np.asarray(art_labels).ravel() == gold))


def _entity_f1(
    report: AccuracyReport, src_logits: np.ndarray, art_logits: np.ndarray, vset: ValidationSet, info: ModelInfo
) -> None:
    """Entity F1 (seqeval) of the source's and the artifact's primary output (logits) against the
    gold tags, and the drop in points; unavailable without gold tags or label names."""
    reason = None
    if info.task != "token-classification":
        reason = "not a token-classification model"
    elif vset.gold_tags is None:
        reason = f"validation data ({vset.kind}) has no gold tags; pass a CoNLL file with --data"
    elif not info.labels:
        reason = "the model carries no label names (id2label)"
    if reason:
        for metric in ("entity_f1_source", "entity_f1_artifact", "entity_f1_drop"):
            report.unavailable[metric] = reason
        return
    assert vset.gold_tags is not None and vset.word_starts is not None and info.labels is not None
    f1_src = 100 * entity_f1(vset.gold_tags, decode_tags(src_logits, vset.word_starts, info.labels))
    f1_art = 100 * entity_f1(vset.gold_tags, decode_tags(art_logits, vset.word_starts, info.labels))
    report.metrics.update(entity_f1_source=f1_src, entity_f1_artifact=f1_art, entity_f1_drop=f1_src - f1_art)
    by_src = entity_f1_by_type(vset.gold_tags, decode_tags(src_logits, vset.word_starts, info.labels))
    by_art = entity_f1_by_type(vset.gold_tags, decode_tags(art_logits, vset.word_starts, info.labels))
    report.entity_f1 = {
        kind: {"source": 100 * f1, "artifact": 100 * by_art.get(kind, (0.0, support))[0], "support": support}
        for kind, (f1, support) in by_src.items()
    }


def tag_flips(
    src_logits: np.ndarray, art_logits: np.ndarray, mask: np.ndarray | None, labels: list[str] | None
) -> list[dict]:
    """Which predicted tag of the source became which of the artifact, on real tokens.

    Args:
        src_logits / art_logits: ``(N, L, tags)`` float logits (other shapes: ``[]``).
        mask: ``(N, L)`` attention mask, or None (every token counts).
        labels: tag names by index (``id2label``); None or too short: the index as text.

    Returns:
        ``[{"source": tag, "artifact": tag, "count": n}]``, most frequent first (ties by name), at
        most :data:`MAX_TAG_FLIPS` entries.
    """
    if src_logits.ndim != 3 or src_logits.shape != art_logits.shape:
        return []
    src, art = src_logits.argmax(-1), art_logits.argmax(-1)
    keep = np.ones(src.shape, bool) if mask is None or mask.shape != src.shape else mask.astype(bool)
    differ = keep & (src != art)
    names = labels or []
    counts: dict[tuple[str, str], int] = {}
    for s_id, a_id in zip(src[differ].tolist(), art[differ].tolist(), strict=True):
        key = (_tag(names, s_id), _tag(names, a_id))
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TAG_FLIPS]
    return [{"source": s, "artifact": a, "count": n} for (s, a), n in ranked]


def _tag(names: list[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


def error_histogram(diff: np.ndarray) -> dict:
    """Counts of |a − s| (any shape; NaN left out, inf in the last bin) in :data:`ERROR_BIN_EDGES`:
    ``{"edges": [...], "counts": [...]}`` with ``len(counts) == len(edges) - 1``; a value in
    ``[edges[i], edges[i+1])`` counts in bin ``i``."""
    values = np.asarray(diff, np.float64).ravel()
    values = values[~np.isnan(values)]
    edges = np.asarray(ERROR_BIN_EDGES)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1)
    return {"edges": list(ERROR_BIN_EDGES), "counts": [int(c) for c in counts]}


def _pooled_cosine(s: np.ndarray, a: np.ndarray, mask: np.ndarray | None) -> np.ndarray | None:
    """Per-sample cosine (N,) of attention-mask mean-pooled (N, T, F) outputs, or None if not applicable."""
    if mask is None or s.ndim != 3 or s.shape[:2] != mask.shape or not np.issubdtype(s.dtype, np.floating):
        return None
    weights = mask.astype(np.float64)[..., None]
    count = np.maximum(weights.sum(1), 1.0)
    real = mask.astype(bool)[..., None]  # padded positions are dropped, not multiplied by 0 (NaN * 0 is NaN)
    s64, a64 = np.where(real, s.astype(np.float64), 0.0), np.where(real, a.astype(np.float64), 0.0)
    ps, pa = (s64 * weights).sum(1) / count, (a64 * weights).sum(1) / count
    return row_cosine(ps, pa)


def row_cosine(s: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row (last axis) of ``s`` and ``a`` (float64, shape ``s.shape[:-1]``).

    Two all-zero rows are identical: cosine 1 (a ReLU output that is zero on both sides must not
    fail a fidelity gate). One zero row against a non-zero one, or a non-finite value: cosine 0.
    """
    norms = np.linalg.norm(s, axis=-1) * np.linalg.norm(a, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (s * a).sum(-1) / norms
    both_zero = (np.abs(s).max(-1, initial=0.0) == 0) & (np.abs(a).max(-1, initial=0.0) == 0)
    return np.where(both_zero, 1.0, np.where(np.isfinite(cos), cos, 0.0))


def _compare_one(name: str, s: np.ndarray, a: np.ndarray, mask: np.ndarray | None) -> OutputComparison:
    """Figures of one output pair, over real tokens only where the output follows the mask: a
    (N, T, ...) output keeps its real tokens' rows; a (N, T) output (one value per token, e.g. a
    question-answering head's start logits) has its padded positions set to 0 on both sides for the
    errors and cosines and left out of the argmax. Non-finite values at padded positions are not
    counted: a model may write anything there."""
    s64, a64 = s.astype(np.float64), a.astype(np.float64)
    argmax_s = argmax_a = None
    if mask is not None and s.ndim >= 3 and s.shape[:2] == mask.shape:
        valid = mask.astype(bool)
        s64, a64 = s64[valid], a64[valid]  # (tokens, features)
    elif mask is not None and s.ndim == 2 and s.shape == mask.shape and s.shape[1] > 1:
        valid = mask.astype(bool)
        argmax_s = np.where(valid, s64, -np.inf).argmax(-1)
        argmax_a = np.where(valid, np.nan_to_num(a64, nan=-np.inf), -np.inf).argmax(-1)
        s64, a64 = np.where(valid, s64, 0.0), np.where(valid, a64, 0.0)
    nonfinite = int(np.size(a64) - np.count_nonzero(np.isfinite(a64)))
    rows_s = s64.reshape(-1, s64.shape[-1]) if s64.ndim >= 2 else s64.reshape(-1, 1)
    rows_a = a64.reshape(rows_s.shape)
    diff = np.abs(rows_a - rows_s)
    cos = row_cosine(rows_s, rows_a)
    if argmax_s is not None and argmax_a is not None:
        agree = float(np.mean(argmax_s == argmax_a))
    else:
        agree = float(np.mean(rows_a.argmax(-1) == rows_s.argmax(-1))) if rows_s.shape[-1] > 1 else float("nan")
    finite = np.isfinite(diff)
    diff_f = np.where(finite, diff, np.inf)
    return OutputComparison(
        name=name,
        shape=list(s.shape),
        max_abs_error=float(diff_f.max()) if diff.size else 0.0,
        mean_abs_error=float(diff_f.mean()) if diff.size else 0.0,
        max_rel_error=float((diff_f / np.maximum(np.abs(rows_s), 1e-6)).max()) if diff.size else 0.0,
        cosine_min=float(cos.min()) if cos.size else 1.0,
        cosine_mean=float(cos.mean()) if cos.size else 1.0,
        argmax_agreement=agree,
        nonfinite=nonfinite,
        error_histogram=error_histogram(diff),
    )
