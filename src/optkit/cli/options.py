"""Option declarations shared by commands, declared once."""

from __future__ import annotations

from typing import Any

import typer
import yaml
from rich.console import Console

from optkit.errors import RecipeError


def stderr_console() -> Console:
    """The console commands print progress and verdicts to: stderr (stdout stays for ``--json``),
    with long lines kept whole (``soft_wrap``): in CI, where stderr is no terminal, rich would
    otherwise wrap every message at 80 columns and split one-line errors and warnings."""
    return Console(stderr=True, soft_wrap=True)


TrustPickleOpt = typer.Option(False, "--trust-pickle", help="allow loading pickles (runs code from the file, confined)")
TrustRemoteCodeOpt = typer.Option(
    False, "--trust-remote-code", help="let a Hugging Face folder's own code (auto_map) run, confined"
)
TrustModelCodeOpt = typer.Option(
    False, "--trust-model-code", help="DANGEROUS: skip the static scan of the model file (never the sandbox)"
)
TrustSkopsTypeOpt = typer.Option(
    [],
    "--trust-skops-type",
    help="let a .skops file hold classes of this package or type from outside scikit-learn, e.g. lightgbm "
    "or xgboost (repeatable; classes only, never functions)",
)
RequireSandboxOpt = typer.Option(
    False, "--require-sandbox", help="fail unless the source model can be confined (Landlock); --strict implies it"
)
RecipeOpt = typer.Option("fp32", "--recipe", "-r", help="built-in recipe name or path to a recipe .yaml")
JsonOpt = typer.Option(False, "--json", help="print the result as JSON on stdout (progress goes to stderr)")
StrictOpt = typer.Option(False, "--strict", help="a skipped gate (e.g. a CUDA speed gate on CPU) fails the run")


def parse_int_list(value: str | None, flag: str) -> list[int] | None:
    """``"1,8,32"`` → ``[1, 8, 32]``; RecipeError naming ``flag`` on bad input."""
    if value is None:
        return None
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise RecipeError(f"{flag} expects comma-separated integers, got {value!r}", f"e.g. {flag} 1,8") from None
    if not items or min(items) < 1:
        raise RecipeError(f"{flag} expects positive integers, got {value!r}", f"e.g. {flag} 1,8")
    return items


def parse_sets(values: list[str]) -> dict[str, Any]:
    """``["validation.max_samples=64"]`` → ``{"validation.max_samples": 64}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set expects KEY=VALUE, got {item!r}", "e.g. --set validation.max_samples=64")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise RecipeError(f"--set {key}: value {raw!r} is not valid YAML", "quote strings, e.g. 'a b'") from None
    return out
