"""Rich rendering of progress and results (to stderr, so ``--json`` keeps stdout clean)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from optkit.artifact.report import SEARCH_CONSOLE_COLUMNS, fmt, search_console_rows, search_tables

STYLE = {"passed": "green", "failed": "bold red", "inconclusive": "bold magenta", "skipped": "yellow"}


class Progress:
    """Prints one line per pipeline step with its wall time, and one per benchmarked shape."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "step":
            self.console.print(f"[dim]…[/dim] {payload}", highlight=False)
        elif kind == "step_done":
            note = f" [yellow](skipped: {payload.skipped})[/yellow]" if payload.skipped else ""
            self.console.print(
                f"[green]✓[/green] {payload.name} [dim]{payload.seconds:.1f} s[/dim]{note}", highlight=False
            )
            for warning in payload.warnings:
                if warning != payload.skipped:
                    self.console.print(f"  [yellow]warning:[/yellow] {warning}", highlight=False)
        elif kind == "progress":
            self.console.print(f"  [dim]{payload}[/dim]", highlight=False)
        elif kind == "shape":
            est = payload.estimate
            interval = f" [{est.ci_low:.2f}, {est.ci_high:.2f}] 95 %" if est else ""
            self.console.print(
                f"  {payload.device} batch {payload.batch_size} × seq {payload.sequence_length}: "
                f"source {payload.source.p50_ms:.2f} ms, artifact {payload.artifact.p50_ms:.2f} ms "
                f"(p50, {payload.rounds} rounds) → {payload.speedup:.2f}×{interval}",
                highlight=False,
            )
            for warning in payload.noise.warnings if payload.noise else []:
                self.console.print(f"  [yellow]warning:[/yellow] busy machine: {warning}", highlight=False)


def render_result(console: Console, result) -> None:
    """Gate table, speed table, warnings and the final PASSED/FAILED line."""
    if result.speed and result.speed.shapes:
        speed = Table(title="Speed vs source (p50 / p90 ms, same run, alternating rounds)")
        for col in ("device", "batch", "seq", "source", "artifact", "speed-up", "95 % interval", "rounds"):
            speed.add_column(col)
        for s in result.speed.shapes:
            speed.add_row(
                s.device,
                str(s.batch_size),
                str(s.sequence_length or "—"),
                f"{s.source.p50_ms:.2f} / {s.source.p90_ms:.2f}",
                f"{s.artifact.p50_ms:.2f} / {s.artifact.p90_ms:.2f}",
                f"{s.speedup:.2f}×",
                f"[{s.estimate.ci_low:.2f}, {s.estimate.ci_high:.2f}]" if s.estimate else "—",
                str(s.rounds),
            )
        console.print(speed)
    for step, search in search_tables(result):
        gates = ", ".join(g["name"] for g in search["candidates"][0]["gates"])
        found = Table(
            title=f"{step}: {len(search['candidates']) - 1} candidate(s) in {search['elapsed_s']} s, "
            f"fastest call at {search['latency_shape']}",
            caption=f"gate values in order: {gates}",
        )
        for col in SEARCH_CONSOLE_COLUMNS:
            found.add_column(col)
        for row in search_console_rows(search):
            found.add_row(*row, style="bold" if row[-1] == "chosen" else None)
        console.print(found)
    table = Table(title=f"Gates ({result.recipe.name})")
    for col in ("gate", "measured", "verdict", "note"):
        table.add_column(col)
    for gate in result.gates:
        table.add_row(gate.name, fmt(gate.value), f"[{STYLE[gate.status]}]{gate.status.upper()}[/]", gate.reason)
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if result.approved:
        console.print(f"[bold green]PASSED[/bold green] approved artifact: {result.output_dir}", highlight=False)
    else:
        names = "; ".join(result.rejections)
        console.print(f"[bold red]FAILED[/bold red] not approved ({names}); nothing was written", highlight=False)
