"""``optkit batch PLAN.yaml`` and ``optkit nodes``: thin layers over :mod:`optkit.batch`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from optkit.cli.errors import guarded
from optkit.cli.options import JsonOpt, stderr_console
from optkit.errors import EXIT_APPROVED, EXIT_GATE_FAILED, UsageError


def batch_command(
    plan_file: Path = typer.Argument(..., help="the plan: a YAML file of items (source, recipe, data, overrides)"),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="items at once on this machine (without --ray)"),
    ray: str | None = typer.Option(
        None,
        "--ray",
        help="run each item as a Ray task on the cluster at ADDRESS: 'auto' (the one `ray start` runs "
        "here), HOST:PORT, or 'local' (a private cluster in this process)",
    ),
    retries: int = typer.Option(1, "--retries", min=0, help="with --ray: reruns of a task whose worker died"),
    keep_going: bool = typer.Option(False, "--keep-going", help="run every item even after one fails"),
    force: bool = typer.Option(False, "--force", help="run items whose artifact is up to date too"),
    summary_dir: Path | None = typer.Option(
        None, "--summary-dir", help="where summary.json, summary.md and junit.xml go [default: the plan's output]"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Run a plan of models × recipes: each item makes one artifact exactly as `optkit convert` would.

    Up-to-date items (same source and recipe sha256) are skipped unless --force. Exit codes: 0 every
    item approved, 1 an item was not approved, 2 bad plan or unschedulable target, 130 Ctrl-C.
    """
    console = stderr_console()

    def run() -> int:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from optkit.batch.plan import load_plan, output_root, resolve_items
        from optkit.batch.run import PlanOutcome, check_targets_local, run_plan
        from optkit.batch.summary import summary_dict, summary_table, write_summaries

        if ray is not None and jobs != 1:
            raise UsageError("--jobs applies to local runs; a Ray cluster schedules by its CPUs", "drop --jobs")
        plan = load_plan(plan_file)
        items = resolve_items(plan, plan_file.parent)
        # the plan's own output folder, never the folder around an item's `output` (which may hold
        # the user's own summary.json)
        out_root = summary_dir or output_root(plan, plan_file.parent)
        runner: object
        if ray is None:
            from optkit.batch.runner_local import LocalRunner

            check_targets_local(items)
            runner = LocalRunner(jobs)
        else:
            from optkit.batch.runner_ray import RayRunner

            runner = RayRunner(ray, retries)
            runner.check(items)  # unschedulable targets: exit 2 before any work
        console.print(f"[bold]optkit batch[/bold] {plan_file}: {len(items)} items, {runner.describe()}")
        bar = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        task = bar.add_task("items", total=len(items))

        def done(outcome) -> None:
            mark = "✓" if outcome.ok else "✗"
            extra = f" {outcome.error}" if outcome.error else ""
            bar.console.print(
                f"{mark} {outcome.name}: {outcome.status} ({outcome.seconds:.1f} s){extra}", highlight=False
            )
            bar.advance(task)

        try:
            with bar:
                result = run_plan(items, runner, force=force, keep_going=keep_going, on_done=done)
        except KeyboardInterrupt as exc:
            stopped: PlanOutcome | None = getattr(exc, "plan_outcome", None)
            if stopped is not None:
                write_summaries(stopped, out_root)
            raise
        finally:
            close = getattr(runner, "close", None)
            if close is not None:
                close()
        paths = write_summaries(result, out_root)
        console.print(summary_table(result))
        console.print(f"summaries: {', '.join(str(p) for p in paths)}", highlight=False)
        if as_json:
            sys.stdout.write(json.dumps(summary_dict(result), indent=2) + "\n")
        return EXIT_APPROVED if result.approved else EXIT_GATE_FAILED

    raise typer.Exit(guarded(run))


def nodes_command(
    ray: str | None = typer.Option(
        None,
        "--ray",
        help="list the nodes of the Ray cluster at ADDRESS ('auto', HOST:PORT, 'local'); default: this machine",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """List the machines that would measure: host, CPU model and int8 flags, ONNX Runtime providers,
    and on a Ray cluster each node's id and resources (what a plan's `target` can name)."""
    console = stderr_console()

    def run() -> int:
        from rich.table import Table

        from optkit.batch.nodes import cluster_facts, local_facts

        facts = [local_facts()] if ray is None else cluster_facts(ray)
        if as_json:
            sys.stdout.write(json.dumps([f.to_dict() for f in facts], indent=2) + "\n")
            return 0
        table = Table(title="optkit nodes")
        for column in ("host", "node", "cpu", "cores", "int8 flags", "ort providers", "resources"):
            table.add_column(column)
        for f in facts:
            resources = ", ".join(f"{k}={v:g}" for k, v in f.resources.items())
            table.add_row(
                f.hostname,
                (f.node_id or "-")[:12],
                f.cpu_model,
                str(f.logical_cores or "?"),
                " ".join(f.cpu_flags),
                " ".join(f.ort_providers),
                resources or "-",
            )
        console.print(table)
        return 0

    raise typer.Exit(guarded(run))
