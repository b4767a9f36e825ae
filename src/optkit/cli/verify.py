"""``optkit verify``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from optkit.cli.errors import guarded
from optkit.cli.options import JsonOpt, StrictOpt
from optkit.errors import EXIT_APPROVED, EXIT_GATE_FAILED


def verify_command(
    artifact: Path = typer.Argument(..., help="artifact folder written by optkit convert"),
    strict: bool = StrictOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Re-hash every artifact file against manifest.json and check that it was approved.

    Exit codes: 0 verified, 1 a file or gate does not check out, 2 not an artifact folder.
    """
    console = Console(stderr=True)

    def run() -> int:
        from optkit.artifact.verify import verify_artifact

        result = verify_artifact(artifact, strict=strict)
        for problem in result.problems:
            console.print(f"[red]✗[/red] {problem}", highlight=False)
        if as_json:
            sys.stdout.write(json.dumps({"ok": result.ok, "problems": result.problems,
                                         "checked_files": result.checked_files}, indent=2) + "\n")
        if result.ok:
            console.print(f"[bold green]PASSED[/bold green] {artifact}: {len(result.checked_files)} files match "
                          "the manifest, approved", highlight=False)
            return EXIT_APPROVED
        console.print(f"[bold red]FAILED[/bold red] {artifact}: {len(result.problems)} problem(s)", highlight=False)
        return EXIT_GATE_FAILED

    raise typer.Exit(guarded(run))
