"""The ``optkit`` typer app; ``main`` is the console-script entry point."""

from __future__ import annotations

import os

import typer

from optkit import __version__
from optkit.cli import recipes
from optkit.cli.convert import convert_command
from optkit.cli.verify import verify_command

app = typer.Typer(name="optkit", add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Convert a trained model to an approved ONNX artifact, validated against its source.")
app.command("convert")(convert_command)
app.command("verify")(verify_command)
app.add_typer(recipes.app, name="recipes")


@app.command("version")
def version_command() -> None:
    """Print optkit's version."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    app()


if __name__ == "__main__":
    main()
