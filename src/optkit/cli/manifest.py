"""``optkit manifest schema``: the JSON schema of ``manifest.json``."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="The artifact manifest (manifest.json): print its JSON schema.", no_args_is_help=True)


@app.command("schema")
def schema_command() -> None:
    """Print the JSON schema of ``manifest.json`` (for tools that read artifacts)."""
    from optkit.artifact.manifest import Manifest

    typer.echo(json.dumps(Manifest.model_json_schema(), indent=2))
