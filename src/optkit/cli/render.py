"""Rich rendering of progress and results (to stderr, so ``--json`` keeps stdout clean)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from optkit.artifact.report import SEARCH_CONSOLE_COLUMNS, fmt, search_console_rows, search_tables
from optkit.records.manifest import CONTENDED_MARK
from optkit.reporting.serving import serving_summary
from optkit.results import ConvertResult, StepRecord
from optkit.validation.speed import ShapeResult, SpeedReport

STYLE = {"passed": "green", "failed": "bold red", "inconclusive": "bold magenta", "skipped": "yellow"}


class Progress:
    """Prints one line per pipeline step with its wall time, and one per benchmarked shape (an
    :class:`optkit.results.Progress`)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def step_started(self, name: str) -> None:
        """``… name``."""
        self.console.print(f"[dim]…[/dim] {name}", highlight=False)

    def step_done(self, record: StepRecord) -> None:
        """``✓ name 1.2 s``, then the step's warnings."""
        note = f" [yellow](skipped: {record.skipped})[/yellow]" if record.skipped else ""
        self.console.print(f"[green]✓[/green] {record.name} [dim]{record.seconds:.1f} s[/dim]{note}", highlight=False)
        for warning in record.warnings:
            if warning != record.skipped:
                self.console.print(f"  [yellow]warning:[/yellow] {warning}", highlight=False)

    def message(self, text: str) -> None:
        """An indented, dimmed line."""
        self.console.print(f"  [dim]{text}[/dim]", highlight=False)

    def shape_measured(self, shape: ShapeResult) -> None:
        """Source vs artifact p50 at one shape, the speed-up and its 95 % interval; a busy machine's warnings."""
        est = shape.estimate
        interval = f" [{est.ci_low:.2f}, {est.ci_high:.2f}] 95 %" if est else ""
        if shape.contended:
            interval += f" ({CONTENDED_MARK})"
        self.console.print(
            f"  {shape.device} batch {shape.batch_size} × seq {shape.sequence_length}: "
            f"source {shape.source.p50_ms:.2f} ms, artifact {shape.artifact.p50_ms:.2f} ms "
            f"(p50, {shape.rounds} rounds) → {shape.speedup:.2f}×{interval}",
            highlight=False,
        )
        for warning in shape.noise.warnings if shape.noise else []:
            self.console.print(f"  [yellow]warning:[/yellow] busy machine: {warning}", highlight=False)


def render_result(console: Console, result: ConvertResult) -> None:
    """Gate table, speed table, warnings and the final PASSED/FAILED line."""
    if result.speed and result.speed.shapes:
        speed = Table(title="Speed vs source (p50 / p90 / p99 ms, same run, alternating rounds)")
        for col in ("device", "batch", "seq", "source", "artifact", "speed-up", "95 % interval", "rounds"):
            speed.add_column(col)
        for s in result.speed.shapes:
            speed.add_row(
                s.device,
                str(s.batch_size),
                str(s.sequence_length or "—"),
                latency_cell(s.source),
                latency_cell(s.artifact),
                f"{s.speedup:.2f}×",
                (f"[{s.estimate.ci_low:.2f}, {s.estimate.ci_high:.2f}]" if s.estimate else "—")
                + (f" ({CONTENDED_MARK})" if s.contended else ""),
                str(s.rounds),
            )
        console.print(speed)
    if result.speed:
        render_workloads(console, result.speed)
    for step, search in search_tables(result):
        gates = ", ".join(g.name for g in search.candidates[0].gates)
        found = Table(
            title=f"{step}: {search.tried} candidate(s) in {search.elapsed_s} s, "
            f"fastest call at {search.latency_shape}",
            caption=f"gate values in order: {gates}"
            + ("; speed-up over the fp32 input, ≈ near-tie with the fastest" if search.ranking else ""),
        )
        for col in SEARCH_CONSOLE_COLUMNS:
            found.add_column(col)
        for row in search_console_rows(search):
            found.add_row(*row, style="bold" if row[-1] == "chosen" else None)
        console.print(found)
    if result.serving is not None:
        console.print(f"session: {serving_summary(result.serving)}", highlight=False)
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


def latency_cell(stats) -> str:
    """``p50 / p90 / p99`` in ms (``p99`` as ``—`` when absent)."""
    p99 = f"{stats.p99_ms:.2f}" if stats.p99_ms is not None else "—"
    return f"{stats.p50_ms:.2f} / {stats.p90_ms:.2f} / {p99}"


def render_workloads(console: Console, speed: SpeedReport) -> None:
    """The real-length throughput table, the batch-size scan line and each runner's peak memory."""
    if speed.real_length:
        table = Table(title="Real lengths (validation batches, each padded to its longest; samples/s)")
        for col in ("batch", "padding", "samples", "source", "artifact", "artifact / source", "95 % interval"):
            table.add_column(col)
        for r in speed.real_length:
            est = r.estimate
            length = f" (mean {r.mean_length:.0f} tokens)" if r.mean_length is not None else ""
            table.add_row(
                str(r.batch_size),
                r.padding + length,
                str(r.samples),
                f"{r.source_throughput:.1f}",
                f"{r.artifact_throughput:.1f}",
                f"{r.artifact_throughput / r.source_throughput:.2f}×",
                f"[{est.ci_low:.2f}, {est.ci_high:.2f}]" if est else "—",
            )
        console.print(table)
    scan = speed.batch_scan
    if scan and scan.points:
        curve = ", ".join(f"{p.batch_size}: {p.latency.throughput:.1f}" for p in scan.points)
        seq = f", seq {scan.sequence_length}" if scan.sequence_length else ""
        stopped = f" ({scan.stopped})" if scan.stopped else ""
        console.print(
            f"Batch-size scan (artifact{seq}; samples/s): {curve} → best batch {scan.best_batch_size} "
            f"({scan.best_throughput:.1f} samples/s){stopped}",
            highlight=False,
        )
    if speed.peak_memory:
        parts = []
        for side in ("source", "artifact"):
            record = speed.peak_memory.get(side)
            if record is None:
                continue
            peak = f"{record.peak_mb:.0f} MB" if record.peak_mb is not None else "unknown"
            base = f" (after imports {record.baseline_mb:.0f} MB)" if record.baseline_mb is not None else ""
            load = speed.load_seconds.get(side)
            parts.append(f"{side} {peak}{base}" + (f", load {load:.2f} s" if load is not None else ""))
        console.print(f"Peak memory of each runner's own process: {'; '.join(parts)}", highlight=False)
