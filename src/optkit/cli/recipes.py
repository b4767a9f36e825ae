"""``optkit recipes list|show|schema|doc``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from optkit.cli.errors import guarded

app = typer.Typer(
    help="Built-in recipes: list them, show one, or print the recipe JSON schema or field tables.", no_args_is_help=True
)


@app.command("list")
def list_command() -> None:
    """List built-in recipes with their passes."""
    from optkit.recipe import builtin_names, load_recipe

    def run() -> None:
        table = Table(title="Built-in recipes")
        for col in ("name", "passes", "description"):
            table.add_column(col)
        for name in builtin_names():
            recipe = load_recipe(name)
            table.add_row(name, " → ".join(["export", *(p.type for p in recipe.passes)]), recipe.description)
        Console().print(table)

    guarded(run)


@app.command("show")
def show_command(name: str = typer.Argument(..., help="built-in recipe name or .yaml path")) -> None:
    """Print a recipe's YAML (built-in text, or a file's), after validating it."""
    from optkit.recipe import builtin_names, builtin_text, load_recipe

    def run() -> None:
        load_recipe(name)
        text = builtin_text(name) if name in builtin_names() else Path(name).read_text(encoding="utf-8")
        typer.echo(text.rstrip())

    guarded(run)


@app.command("schema")
def schema_command() -> None:
    """Print the JSON schema of recipe files (for editor completion/validation)."""
    from optkit.recipe import Recipe

    typer.echo(json.dumps(Recipe.model_json_schema(), indent=2))


@app.command("doc")
def doc_command(
    update: Path | None = typer.Option(
        None, "--update", help="rewrite the generated block of this Markdown file (docs/recipes.md) instead of printing"
    ),
) -> None:
    """Print the recipe field tables (Markdown, from the JSON schema), or update a docs file."""
    from optkit.errors import UsageError
    from optkit.recipe_doc import field_tables, replace_generated

    def run() -> None:
        tables = field_tables()
        if update is None:
            typer.echo(tables.rstrip())
            return
        try:
            text = replace_generated(update.read_text(encoding="utf-8"), tables)
        except ValueError as exc:
            raise UsageError(
                f"cannot update {update}: {exc}", "pass a Markdown file with the generated-block markers"
            ) from exc
        update.write_text(text, encoding="utf-8")  # an OSError is reported by guarded (exit 2)
        typer.echo(f"updated {update}")

    guarded(run)
