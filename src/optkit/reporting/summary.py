"""The CI job summary (``--summary-md``): a short Markdown page for ``$GITHUB_STEP_SUMMARY`` or a
merge-request note, from the typed manifest: verdict, gate table, one speed line, where the
artifact (or the report of a rejected run) is."""

from __future__ import annotations

from optkit.records.manifest import CONTENDED_MARK, Manifest
from optkit.reporting.html import STATUS, blocking, fmt
from optkit.reporting.serving import serving_summary


def _cell(text: str) -> str:
    """Text safe in one Markdown table cell: pipes escaped, newlines flattened."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _workload_lines(manifest: Manifest) -> list[str]:
    """One line of real workloads: real-length throughput ratios, the best batch size, peak memory."""
    speed = manifest.speed
    assert speed is not None
    parts = []
    for r in speed.real_length:
        interval = f" [{fmt(r.estimate.ci_low, 2)}, {fmt(r.estimate.ci_high, 2)}]" if r.estimate else ""
        ratio = r.estimate.ratio if r.estimate else None
        parts.append(
            f"batch {r.batch_size} {fmt(r.artifact_throughput, 1)} vs {fmt(r.source_throughput, 1)} samples/s "
            f"({fmt(ratio, 2)}×{interval})"
        )
    if speed.batch_scan and speed.batch_scan.points:
        parts.append(f"best batch size {speed.batch_scan.best_batch_size}")
    memory = [f"{side} {fmt(p.peak_mb, 0)} MB" for side, p in speed.peak_memory.items()]
    if memory:
        parts.append("peak memory " + ", ".join(memory))
    return ["**Real workloads**: " + "; ".join(parts), ""] if parts else []


def render_summary(manifest: Manifest, artifact: str | None, report: str | None = None) -> str:
    """The Markdown summary.

    Args:
        manifest: the run's manifest (approved or not).
        artifact: the artifact folder written, or None when not approved.
        report: where ``report.html`` was written, when it was (the artifact's, or ``--report-dir``).
    """
    icon = {"passed": "✅", "failed": "❌", "inconclusive": "❔", "skipped": "⏭️"}
    verdict = "✅ APPROVED" if manifest.approved else "❌ NOT APPROVED"
    lines = [
        f"### optkit `{_cell(manifest.recipe.name)}`: {verdict}",
        "",
        f"Source `{_cell(manifest.source.path)}` ({manifest.source.framework}), "
        f"{manifest.data.samples} {'real' if manifest.data.real else 'generated random'} samples "
        f"({manifest.data.kind}).",
        "",
        "| gate | required | measured | interval | verdict |",
        "|---|---|---|---|---|",
    ]
    for g in manifest.gates:
        interval = f"[{fmt(g.ci_low, 3)}, {fmt(g.ci_high, 3)}]" if g.ci_low is not None else "—"
        mark = "❌" if blocking(g, manifest.strict) else icon[g.status]
        lines.append(
            f"| {_cell(g.name)} | {_cell(g.metric)} {g.op} {g.threshold:g} | {fmt(g.value)} | {interval} "
            f"| {mark} {STATUS[g.status]} |"
        )
    lines.append("")
    if manifest.speed and manifest.speed.shapes:
        parts = []
        for s in manifest.speed.shapes:
            ratio = s.estimate.ratio if s.estimate and s.estimate.ratio is not None else None
            if ratio is None and s.artifact.p50_ms:
                ratio = s.source.p50_ms / s.artifact.p50_ms
            seq = f"×{s.sequence_length}" if s.sequence_length else ""
            parts.append(
                f"{s.device} {s.batch_size}{seq}: {fmt(s.artifact.p50_ms, 2)} ms vs {fmt(s.source.p50_ms, 2)} ms "
                f"({fmt(ratio, 2)}×{', ' + CONTENDED_MARK if s.contended else ''})"
            )
        lines += ["**Speed** (artifact vs source p50): " + "; ".join(parts), ""]
    if manifest.serving is not None:  # the tune-session pass's serving configuration
        lines += [f"**Session**: {_cell(serving_summary(manifest.serving))}", ""]
    if manifest.speed:
        lines += _workload_lines(manifest)
    if artifact is not None:
        lines.append(f"Artifact: `{_cell(artifact)}`" + (f" — report: `{_cell(report)}`" if report else ""))
    else:
        lines.append("No artifact written." + (f" Report: `{_cell(report)}`" if report else ""))
    return "\n".join(lines) + "\n"


__all__ = ["render_summary"]
