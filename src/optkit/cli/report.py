"""``optkit report``: re-render an artifact's ``report.html`` from its ``manifest.json``."""

from __future__ import annotations

import sys
import webbrowser
from pathlib import Path

import typer

from optkit.cli.errors import guarded
from optkit.cli.options import stderr_console
from optkit.errors import EXIT_APPROVED, EXIT_GATE_FAILED


def report_command(
    artifact: Path = typer.Argument(..., help="artifact folder written by optkit convert"),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="where to write the page ('-' = stdout, the default without --check); never into the "
        "artifact, whose report.html is hashed",
    ),
    check: bool = typer.Option(
        False, "--check", help="exit 1 unless the artifact's report.html is exactly the re-rendered page"
    ),
    open_page: bool = typer.Option(
        False, "--open", help="open the page in the browser (the artifact's own when identical, else the -o file)"
    ),
) -> None:
    """Re-render ARTIFACT's report.html from its manifest.json (an older artifact gets this
    optkit's page without re-running). The artifact is never changed: its report.html is listed,
    with its sha256, in the manifest.

    Exit codes: 0 written (with --check: identical), 1 with --check: different or missing, 2 bad input.
    """
    console = stderr_console()

    def run() -> int:
        from optkit.artifact.report_files import rerender
        from optkit.paths import check_writable_file, write_atomic
        from optkit.reporting.html import REPORT_HTML

        target = None if output in (None, "-") else check_writable_file(output, "--output")
        page, same = rerender(artifact)
        if target is not None:
            write_atomic(target, page.encode(), "--output")
            console.print(f"wrote {target}", highlight=False)
        elif output == "-" or (output is None and not check and not (open_page and same)):
            sys.stdout.write(page)  # --check alone only compares: the page is not printed
        state = {True: "identical to", False: "different from", None: "missing:"}[same]
        console.print(f"the re-rendered page is {state} {artifact / REPORT_HTML}", highlight=False)
        if open_page:
            shown = artifact / REPORT_HTML if same else target
            if shown is None:
                console.print("--open: the page differs from the artifact's; pass -o FILE to open it")
            else:
                webbrowser.open(shown.resolve().as_uri())
        return EXIT_GATE_FAILED if check and not same else EXIT_APPROVED

    raise typer.Exit(guarded(run))
