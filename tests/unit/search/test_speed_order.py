"""Which unsmoothed settings the int8 search smooths (optkit.search.speed_order.smoothing_bases)."""

from __future__ import annotations

from optkit.search.candidates import CandidateRun
from optkit.search.speed_order import smoothing_bases


def _row(i, wt, pc, rr, margin):
    cand = CandidateRun(i, "settings", wt, pc, rr)
    cand.margin = margin
    return cand


ROWS = [
    CandidateRun(0, "fp32 input"),
    _row(1, "qint8", False, False, -0.02),
    _row(2, "qint8", False, True, -0.05),
    _row(3, "qint8", True, False, -0.001),  # 8-bit per-channel is the more accurate unsmoothed
    _row(4, "qint8", True, True, -0.003),
    _row(5, "quint8", True, True, -0.01),
]


def test_fold_smooths_the_most_accurate_reduce_range_of_each_weight_type_and_granularity():
    assert [c.id for c in smoothing_bases(ROWS)] == [1, 3, 5]


def test_mul_smooths_every_reduce_range_value_the_more_accurate_first():
    """Mul smoothing grows weight rows: 7-bit weights (no int16 saturation in U8S8 on a CPU
    without VNNI) may win once smoothed, so both values of a granularity are bases."""
    assert [c.id for c in smoothing_bases(ROWS, every_reduce_range=True)] == [1, 2, 3, 4, 5]


def test_an_error_row_is_never_a_base():
    broken = _row(6, "quint8", False, False, 0.5)
    broken.error = "quantize_dynamic failed"
    assert 6 not in [c.id for c in smoothing_bases([*ROWS, broken], every_reduce_range=True)]
