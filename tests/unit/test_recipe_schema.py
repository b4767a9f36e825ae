"""The recipe's single sources of truth: every field described, the docs tables generated from the
schema, the pass names derived from the pass modules, and a recipe import that stays cheap."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from optkit import pass_configs, recipe, registry
from optkit.recipe import PASS_TYPES, Recipe, parse_recipe
from optkit.recipe_doc import BEGIN, END, field_tables, recipe_schema, replace_generated

DOCS = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"


def _undescribed(schema: dict) -> list[str]:
    """``Model.field`` for every property (of the root and every ``$defs`` model) without a description."""
    models = {"Recipe": schema, **schema.get("$defs", {})}
    return [
        f"{name}.{key}"
        for name, model in models.items()
        for key, prop in model.get("properties", {}).items()
        if not prop.get("description", "").strip()
    ]


def test_every_recipe_field_has_a_description():
    schema = Recipe.model_json_schema()
    assert len(schema["$defs"]) >= 13  # every section and pass is reached (the walk is not vacuous)
    assert _undescribed(schema) == []


def test_the_walk_finds_a_missing_description():
    schema = Recipe.model_json_schema()
    del schema["$defs"]["FusePass"]["properties"]["num_heads"]["description"]
    assert _undescribed(schema) == ["FusePass.num_heads"]


def test_docs_field_tables_are_up_to_date():
    text = DOCS.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert replace_generated(text, field_tables()) == text, (
        "docs/recipes.md is stale: run `optkit recipes doc --update docs/recipes.md`"
    )


def test_tables_cover_every_field_with_its_default():
    tables = field_tables()
    for name, model in recipe_schema()["$defs"].items():
        assert f"### `{name}`" in tables
        for key in model["properties"]:
            assert f"| `{key}` |" in tables
    assert "| `batch_sizes` | list[int] (length ≥ 1) | `[1, 8]` |" in tables  # a default_factory default
    assert "| `name` | str | required |" in tables
    assert "(\\|x\\| > 65504)" in tables  # pipes in descriptions are escaped


def test_replace_generated_needs_the_markers():
    assert replace_generated(f"a\n{BEGIN}\nold\n{END}\nb\n", "new\n") == f"a\n{BEGIN}\n\nnew\n\n{END}\nb\n"
    with pytest.raises(ValueError):
        replace_generated("no markers", "new")


def test_pass_names_come_from_the_pass_modules():
    schema = Recipe.model_json_schema()
    mapping = schema["properties"]["passes"]["items"]["discriminator"]["mapping"]
    assert PASS_TYPES == ("simplify", "fuse", "smooth", "quantize-dynamic", "quantize-static", "fp16", "tune-session")
    assert list(registry.PASSES) == list(PASS_TYPES) and set(mapping) == set(PASS_TYPES)
    for name, config_class in pass_configs.PASS_CONFIGS.items():
        module = importlib.import_module(config_class.__module__.replace(".pass_configs.", ".passes."))
        assert registry.PASSES[name] == f"{module.__name__}:run"
        assert registry.resolve(registry.PASSES[name]) is module.run  # the run beside the config's name
        assert getattr(recipe, config_class.__name__) is config_class  # re-exported by optkit.recipe
        assert (
            type(
                parse_recipe(
                    f"name: x\npasses: [{{type: {name}}}]\nvalidation: {{gates: [{{metric: cosine_min, min: 0.9}}]}}\n"
                ).passes[0]
            )
            is config_class
        )


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_the_recipe_imports_no_model_library():
    result = _python(
        "import sys, optkit.recipe, optkit.registry\n"
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'onnxsim', 'torch', 'numpy', 'optkit.passes') "
        "if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "module",
    [
        "optkit.pass_configs",
        "optkit.passes.fp16",
        "optkit.search.fp16_guard",
        "optkit.search.int8_search",
        "optkit.passes.base",
        "optkit.registry",
        "optkit.pipeline",
    ],
)
def test_no_import_cycle_whichever_module_comes_first(module):
    result = _python(f"import {module}")
    assert result.returncode == 0, result.stderr
