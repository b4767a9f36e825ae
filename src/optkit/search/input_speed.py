"""The chosen int8 model's speed against the search's own fp32 input, and the warning when it is
clearly slower.

The recipes' speed gates compare the artifact with the *source framework* (PyTorch, TensorFlow, …),
so an int8 model can pass them while it is slower than the fp32 ONNX model it was quantized from:
on an x86 CPU without VNNI (AVX2 only), ONNX Runtime's int8 convolutions run ``VPMADDUBSW`` with
int16 pair sums and gain little over its fp32 NCHWc kernels (ONNX Runtime's quantization guide,
"Quantization on x86"; measured on the MobileNetV2 digits sample: 0.85× the fp32 ONNX model at
batch 32, docs/benchmarks.md). The search times the chosen model against its fp32 input with the
ranking's protocol and says so, so a user can pick the ``fp32`` recipe's model on such a machine.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from optkit.records.search import SpeedupInterval
from optkit.validation.stats import speedup_interval

if TYPE_CHECKING:
    from optkit.search.evaluator import CandidateEvaluator


def time_against_input(
    evaluator: CandidateEvaluator, input_path: Path, chosen_path: Path, rounds: int
) -> SpeedupInterval | None:
    """The speed-up of ``chosen_path`` over ``input_path`` at the evaluator's gated shape.

    Both models are timed in ``rounds`` alternating rounds of ``evaluator.iterations`` calls
    (:meth:`~optkit.search.evaluator.CandidateEvaluator.time_rounds`, the speed gates' protocol);
    the ratio is input p50 / chosen p50 with the 95 % bootstrap interval over rounds
    (:func:`~optkit.validation.stats.speedup_interval`).

    Returns:
        The interval (``near_tie`` False: nothing else is ranked), or None when the timing could
        not run (a session that no longer opens, fewer than 3 rounds): the figure is left out,
        nothing else changes.

    Raises:
        OSError: the disk is full (ENOSPC/EDQUOT), which ends the run.
    """
    try:
        blocks = evaluator.time_rounds([input_path, chosen_path], rounds)
        est = speedup_interval(blocks[0], blocks[1])
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        return None
    return SpeedupInterval(
        ratio=round(est.ratio, 4),
        ci_low=round(est.ci_low, 4),
        ci_high=round(est.ci_high, 4),
        rounds=est.rounds,
        p50_ms=round(float(np.median(np.asarray(blocks[1], dtype=np.float64))) * 1e3, 4),
        near_tie=False,
    )


def slower_than_input(speedup: SpeedupInterval | None, shape: str) -> str | None:
    """A warning when the chosen int8 model is slower than its fp32 input beyond noise (the whole
    95 % interval below 1.0×); None otherwise (faster, or timing could not tell them apart).

    Args:
        speedup: :func:`time_against_input`'s figure (None: not timed, no warning).
        shape: the gated input shape in words, e.g. ``1×64×64×3``.
    """
    if speedup is None or speedup.ci_high >= 1.0:
        return None
    return (
        f"the int8 model is slower than its fp32 input at {shape} on this CPU: {speedup.ratio:.2f}× "
        f"[{speedup.ci_low:.2f}, {speedup.ci_high:.2f}] (int8 kernels gain little on x86 without VNNI); "
        "the speed gates compare it with the source model, not with this fp32 model: on this machine "
        "the fp32 recipe's model may serve better"
    )


__all__ = ["slower_than_input", "time_against_input"]
