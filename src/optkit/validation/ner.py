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
