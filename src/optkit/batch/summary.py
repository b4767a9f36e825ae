"""One summary for the whole plan: a terminal table (:func:`summary_table`), ``summary.json``,
JUnit XML (one suite per item, one case per gate) and a markdown summary for a CI job page
(``$GITHUB_STEP_SUMMARY``); :func:`write_summaries` writes the three files atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from optkit.artifact.junit import JunitSuite, junit_suites_xml
from optkit.batch.outcome import ItemOutcome
from optkit.batch.run import PlanOutcome
from optkit.paths import write_atomic

SUMMARY_JSON, SUMMARY_MD, JUNIT_XML = "summary.json", "summary.md", "junit.xml"
MARK = {"approved": "✅", "skipped": "⏭️", "rejected": "❌", "error": "💥", "cancelled": "⏹️"}


def _gates_line(outcome: ItemOutcome) -> str:
    if outcome.status == "skipped":
        return "up to date (same source and recipe sha256)"
    if outcome.error:
        return outcome.error
    if outcome.status == "cancelled":
        return "not run"
    failed = [g.name for g in outcome.gates if g.blocks(outcome.strict)]
    if failed:
        return "failed: " + ", ".join(failed)
    return f"{len(outcome.gates)} gates passed"


def summary_dict(plan: PlanOutcome) -> dict:
    """``summary.json``'s content: verdict, counts, runner, wall time and every item's outcome."""
    return {
        "approved": plan.approved,
        "interrupted": plan.interrupted,
        "runner": plan.runner,
        "seconds": plan.seconds,
        "counts": plan.counts(),
        "items": [o.to_dict() for o in plan.items],
    }


def summary_markdown(plan: PlanOutcome) -> str:
    """A markdown table of the items (status, recipe, seconds, host, gates) under a one-line verdict."""
    verdict = "all items approved" if plan.approved else "NOT all items approved"
    counts = ", ".join(f"{n} {s}" for s, n in sorted(plan.counts().items()))
    lines = [
        f"## optkit batch: {verdict}",
        "",
        f"{len(plan.items)} items ({counts}) in {plan.seconds:.1f} s, {plan.runner}"
        + (" (interrupted)" if plan.interrupted else ""),
        "",
        "| item | status | recipe | seconds | host | gates |",
        "|---|---|---|---:|---|---|",
    ]
    for o in plan.items:
        gates = _gates_line(o).replace("|", "\\|")
        lines.append(
            f"| {o.name} | {MARK.get(o.status, '')} {o.status} | {o.recipe} | {o.seconds:.1f} | {o.host} | {gates} |"
        )
    return "\n".join(lines) + "\n"


def junit_suites(plan: PlanOutcome) -> list[JunitSuite]:
    """One :class:`~optkit.artifact.junit.JunitSuite` per item."""
    suites = []
    for o in plan.items:
        note = None
        if o.status == "skipped":
            note = f"up to date: {o.output}"
        elif o.status == "cancelled":
            note = "not run (cancelled)"
        suites.append(
            JunitSuite(
                name=o.name,
                recipe=o.recipe or o.name,
                gates=o.gates,
                strict=o.strict,
                error=o.error or None,
                note=note,
                status=o.status,
            )
        )
    return suites


def write_summaries(plan: PlanOutcome, folder: Path) -> list[Path]:
    """Write ``summary.json``, ``summary.md`` and ``junit.xml`` into ``folder`` (created if needed),
    each atomically; returns their paths.

    Raises:
        OutputError: a file cannot be written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / SUMMARY_JSON, folder / SUMMARY_MD, folder / JUNIT_XML]
    write_atomic(paths[0], (json.dumps(summary_dict(plan), indent=2) + "\n").encode(), "summary.json")
    write_atomic(paths[1], summary_markdown(plan).encode(), "summary.md")
    write_atomic(paths[2], junit_suites_xml(junit_suites(plan)), "junit.xml")
    return paths


def summary_table(plan: PlanOutcome):
    """The terminal table (a :class:`rich.table.Table`): one row per item."""
    from rich.table import Table

    table = Table(title=f"optkit batch ({plan.runner}, {plan.seconds:.1f} s)")
    for column in ("item", "status", "recipe", "s", "host", "gates"):
        table.add_column(column, justify="right" if column == "s" else "left")
    style = {"approved": "green", "skipped": "cyan", "rejected": "red", "error": "red", "cancelled": "yellow"}
    for o in plan.items:
        table.add_row(
            o.name,
            f"[{style.get(o.status, 'white')}]{o.status}[/]",
            o.recipe,
            f"{o.seconds:.1f}",
            o.host,
            _gates_line(o),
        )
    return table
