"""Entity-level F1 for token classification (seqeval; CoNLL-2000 style chunk matching)."""

from __future__ import annotations

import numpy as np


def decode_tags(logits: np.ndarray, word_starts: list[list[int]], labels: list[str]) -> list[list[str]]:
    """Word-level tags from token logits, reading each word's first sub-token.

    Args:
        logits: float array ``(N, L, num_labels)``.
        word_starts: per sample, the token index of each word's first sub-token.
        labels: tag names by class index (``id2label``).
    """
    pred = logits.argmax(-1)
    return [[labels[int(pred[i, pos])] for pos in starts] for i, starts in enumerate(word_starts)]


def entity_f1(gold: list[list[str]], predicted: list[list[str]]) -> float:
    """Micro-averaged entity F1 in [0, 1] (``seqeval.metrics.f1_score``, default mode)."""
    from seqeval.metrics import f1_score

    return float(f1_score(gold, predicted, zero_division=0))


def entity_f1_by_type(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, tuple[float, int]]:
    """``{entity type: (F1 in [0, 1], gold support)}`` (``seqeval.metrics.classification_report``,
    default mode), sorted by type; the micro/macro/weighted averages are left out."""
    from seqeval.metrics import classification_report

    table = classification_report(gold, predicted, output_dict=True, zero_division=0)
    return {
        kind: (float(row["f1-score"]), int(row["support"]))
        for kind, row in sorted(table.items())
        if not kind.endswith(" avg")
    }
