"""The ``optkit`` typer app; ``main`` is the console-script entry point."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer

from optkit.cli import manifest, recipes
from optkit.cli.batch import batch_command, nodes_command
from optkit.cli.convert import convert_command
from optkit.cli.report import report_command
from optkit.cli.verify import verify_command
from optkit.version import __version__

app = typer.Typer(
    name="optkit",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Convert a trained model to an approved ONNX artifact, validated against its source.",
)
app.command("convert")(convert_command)
app.command("verify")(verify_command)
app.command("batch")(batch_command)
app.command("nodes")(nodes_command)
app.command("report")(report_command)
app.add_typer(recipes.app, name="recipes")
app.add_typer(manifest.app, name="manifest")


@app.command("version")
def version_command() -> None:
    """Print optkit's version."""
    typer.echo(__version__)


def _no_args(exc: Exception) -> bool:
    """True for the "no command given" error of a group with ``no_args_is_help`` (shows the help)."""
    return any(cls.__name__ == "NoArgsIsHelpError" for cls in type(exc).__mro__)


def usage_line(exc: typer.TyperException) -> str:
    """One line for a command-line error: ``usage error: <problem> (hint: optkit COMMAND --help)``."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "optkit"
    return " ".join(f"usage error: {exc.format_message()} (hint: {command} --help)".split())


def main(args: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the command for ``args`` (default ``sys.argv[1:]``).

    A command-line error (unknown option or command, missing argument, bad value) prints one line
    and exits 2; ``optkit`` (or ``optkit recipes``) alone prints its help and exits 2; ``--help``
    prints the help and exits 0.

    Raises:
        SystemExit: always, with the command's exit code.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        code = app(args=args, prog_name="optkit", standalone_mode=False)
    except typer.TyperException as exc:  # click's UsageError, BadParameter, NoSuchOption, FileError, ...
        if _no_args(exc):  # no command: the help, as before
            typer.echo(exc.ctx.get_help())  # type: ignore[attr-defined]  # NoArgsIsHelpError has one
        else:
            print(usage_line(exc), file=sys.stderr)
        code = exc.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        code = 1
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
