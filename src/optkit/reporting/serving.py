"""The serving configuration (``tune-session`` pass) as text: one summary line and one row per
candidate, shared by report.md, report.html, the terminal and ``optkit verify``."""

from __future__ import annotations

from optkit.records.session import GainRecord, ServingConfig

#: the columns of :func:`serving_rows`
SERVING_COLUMNS = [
    "change from the default",
    "settings",
    "gain",
    "95 % interval",
    "rounds",
    "others (cores)",
    "verdict",
]


def gain_text(gain: GainRecord | None) -> str:
    """``1.23× [1.10, 1.31]`` (default p50 / tuned p50 with its interval), or ``—``."""
    if gain is None or gain.ratio is None:
        return "—"
    interval = (
        f" [{gain.ci_low:.3f}, {gain.ci_high:.3f}]" if gain.ci_low is not None and gain.ci_high is not None else ""
    )
    return f"{gain.ratio:.3f}×{interval}"


def serving_summary(serving: ServingConfig) -> str:
    """One line: the settings and why, e.g. ``intra 1, sequential, … — tuned: intra_op_num_threads=1,
    1.23× [1.10, 1.31] over the default`` or ``… — default kept: no setting beat the default``."""
    if serving.tuned:
        return f"{serving.settings.label()} — tuned: {serving.change}, {gain_text(serving.gain)} over the default"
    return f"{serving.settings.label()} — default kept: {serving.reason}"


def serving_rows(serving: ServingConfig) -> list[list[str]]:
    """One row per candidate (see :data:`SERVING_COLUMNS`): the CPU other processes used while it
    was timed, and its verdict: ``chosen``, ``faster`` (interval above 1, but not the best, or not
    adopted on a busy machine), ``not faster``, or the candidate's note."""
    rows = []
    for c in serving.candidates:
        gain = c.gain
        if gain is None:
            verdict = c.note or "not timed"
        elif serving.tuned and c.change == serving.change:
            verdict = "chosen"
        elif gain.ci_low is not None and gain.ci_low > 1:
            verdict = "faster"
        else:
            verdict = "not faster"
        ratio = f"{gain.ratio:.3f}×" if gain is not None and gain.ratio is not None else "—"
        interval = (
            f"[{gain.ci_low:.3f}, {gain.ci_high:.3f}]"
            if gain is not None and gain.ci_low is not None and gain.ci_high is not None
            else "—"
        )
        others = f"{c.others_cores:.2f}" if c.others_cores is not None else "—"
        rows.append([c.change, c.settings.label(), ratio, interval, str(gain.rounds) if gain else "—", others, verdict])
    return rows


__all__ = ["SERVING_COLUMNS", "gain_text", "serving_rows", "serving_summary"]
