"""Validation under the padding a server uses: each batch padded to its own longest example
(per-batch, dynamic padding) as well as the whole set padded to one length (fixed). Dynamic int8
scales are computed from every value a MatMul sees, padded positions included, so the same
artifact can score differently under the two (issue 11: an NER artifact's F1 moved by 1.5 points).

Outputs of a per-batch run are padded back along axis 1 to the set's length (zeros), so that
they line up with the set's ``attention_mask``; the comparison (:mod:`optkit.validation.accuracy`)
ignores padded positions, so those zeros are never compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from optkit.runners.base import Feeds, Runner
from optkit.validation.accuracy import concat_outputs
from optkit.validation.data import Padding, ValidationSet

#: the recipe's ``validation.padding``: one padding, or both (the worse value of each metric counts)
PaddingMode = Literal["per-batch", "fixed", "both"]


@dataclass
class PaddedReference:
    """The source model's outputs on every validation sample under each padding that is validated.

    Attributes:
        mode: the recipe's ``validation.padding``.
        outputs: ``{padding: {output name: (N, ...)}}``; a per-batch run's token outputs are padded
            back to the set's length. Only ``"fixed"`` when per-batch padding cannot differ
            (:attr:`~optkit.validation.data.ValidationSet.pads_per_batch` is False).
        note: why a padding of ``mode`` is not validated separately, or empty.
    """

    mode: PaddingMode
    outputs: dict[Padding, Feeds] = field(default_factory=dict)
    note: str = ""

    @property
    def paddings(self) -> list[Padding]:
        """The paddings validated, in order (``"fixed"`` first)."""
        order: list[Padding] = ["fixed", "per-batch"]
        return [p for p in order if p in self.outputs]


def paddings_for(mode: PaddingMode, vset: ValidationSet) -> tuple[list[Padding], str]:
    """The paddings to validate for ``mode`` on ``vset``, and a note when one collapses.

    Per-batch padding equals the fixed length when the set has no token inputs with an
    ``attention_mask`` or the model fixes its length; it is then run once, as ``"fixed"``.
    """
    if not vset.pads_per_batch:
        note = (
            ""
            if mode == "fixed"
            else "per-batch padding is the fixed length here (no attention_mask, or a length the model fixes)"
        )
        return ["fixed"], note
    if mode == "both":
        return ["fixed", "per-batch"], ""
    return [mode], ""


def run_padded(runner: Runner, vset: ValidationSet, batch_size: int, padding: Padding) -> Feeds:
    """Run ``runner`` over every batch of ``vset`` padded as ``padding`` says, and concatenate.

    Args:
        runner: a source runner (``infer_many``: one round trip to the worker) or an ONNX Runtime one.
        vset: the validation inputs.
        batch_size: samples per call.
        padding: ``"fixed"`` or ``"per-batch"`` (see :meth:`ValidationSet.batches`).

    Returns:
        ``{output name: (N, ...)}``; an output whose axis 1 follows a per-batch batch's length is
        padded back with zeros to the set's length T.

    Raises:
        Exception: whatever the runner raises.
    """
    batches = vset.batches(batch_size, padding)
    infer_many = getattr(runner, "infer_many", None)
    outputs = infer_many(batches) if infer_many is not None else [runner.infer(b) for b in batches]
    full = vset.sequence_length
    if padding == "per-batch" and full is not None:
        outputs = pad_back(outputs, [vset.batch_length(b) for b in batches], full)
    return concat_outputs(outputs)


def pad_back(outputs: list[Feeds], lengths: list[int], full: int) -> list[Feeds]:
    """Pad each batch's token outputs along axis 1 from its length to ``full`` (zeros).

    An output is a token output when, in every batch, its axis 1 equals that batch's length
    (``lengths``); others (pooled vectors, logits) are left as they are.
    """
    names = [
        name
        for name in outputs[0]
        if all(out[name].ndim >= 2 and out[name].shape[1] == n for out, n in zip(outputs, lengths, strict=True))
    ]
    padded = []
    for out, length in zip(outputs, lengths, strict=True):
        batch = dict(out)
        for name in names:
            if length < full:
                value = out[name]
                pad = [(0, 0), (0, full - length)] + [(0, 0)] * (value.ndim - 2)
                batch[name] = np.pad(value, pad)
        padded.append(batch)
    return padded


def reference_outputs(runner: Runner, vset: ValidationSet, batch_size: int, mode: PaddingMode) -> PaddedReference:
    """The source's outputs under every padding ``mode`` asks for (:func:`paddings_for`)."""
    paddings, note = paddings_for(mode, vset)
    return PaddedReference(mode, {p: run_padded(runner, vset, batch_size, p) for p in paddings}, note)
