"""Recipe overrides: passes addressed by type, runtime.threads and its deprecated alias
benchmark.threads, and `optkit convert` reading the recipe once into one ConvertRequest."""

from __future__ import annotations

import pathlib

import pytest
from typer.testing import CliRunner

import optkit.pipeline
import optkit.recipe
from optkit.cli.app import app
from optkit.errors import RecipeError
from optkit.recipe import BenchmarkConfig, Recipe, RuntimeConfig, apply_overrides, load_recipe, parse_recipe
from optkit.request import ConvertRequest

runner = CliRunner()
GATES = "validation: {gates: [{metric: cosine_min, min: 0.9}]}\n"


def test_a_pass_addressed_by_type_sets_every_pass_of_that_type():
    recipe = load_recipe("ner-int8", {"passes.quantize-dynamic.search_budget_s": 30, "passes.fuse.num_heads": 4})
    assert recipe.passes[2].search_budget_s == 30 and recipe.passes[1].num_heads == 4
    two = parse_recipe(
        "name: x\npasses: [{type: simplify}, {type: fp16}, {type: fp16}]\n" + GATES,
        overrides={"passes.fp16.max_block_rounds": 3},
    )
    assert [getattr(p, "max_block_rounds", None) for p in two.passes] == [None, 3, 3]
    assert load_recipe("ner-int8", {"passes.2.search_budget_s": 7}).passes[2].search_budget_s == 7  # by index still


def test_a_pass_type_the_recipe_lacks_names_the_recipes_passes():
    with pytest.raises(RecipeError, match=r"has no 'fp16' pass \(its passes: simplify, fuse, quantize-dynamic\)"):
        load_recipe("ner-int8", {"passes.fp16.auto_block": False})
    with pytest.raises(RecipeError, match=r"unknown pass type 'int4'.*\(its passes: simplify, fuse, quantize-dyn"):
        load_recipe("ner-int8", {"passes.int4.bits": 4})
    with pytest.raises(RecipeError, match=r"\(its passes: none\)"):
        load_recipe("sklearn-fp32", {"passes.fuse.num_heads": 2})


def test_a_field_the_pass_type_lacks_is_a_recipe_error():
    with pytest.raises(RecipeError, match="unknown key 'bogus'"):
        load_recipe("ner-int8", {"passes.fuse.bogus": 1})


def test_runtime_threads_default_and_override():
    assert load_recipe("fp32").runtime.threads == 2
    assert load_recipe("fp32", {"runtime.threads": 6}).runtime.threads == 6
    assert load_recipe("fp32", {"benchmark.threads": 5}).runtime.threads == 5  # the old --set key keeps working


def test_benchmark_threads_is_an_alias_of_runtime_threads():
    legacy = parse_recipe("name: x\nbenchmark: {threads: 3}\n" + GATES)
    assert legacy.runtime.threads == 3 and legacy.benchmark.threads is None
    assert "threads" not in legacy.model_dump()["benchmark"]  # one place holds it in the manifest
    assert parse_recipe("name: x\nbenchmark: {threads: 3}\nruntime: {threads: 3}\n" + GATES).runtime.threads == 3
    flagged = parse_recipe("name: x\nbenchmark: {threads: 3}\n" + GATES, overrides={"runtime.threads": 8})
    assert flagged.runtime.threads == 8  # --threads wins over a legacy benchmark.threads
    direct = Recipe.model_validate({"name": "x", "benchmark": {"threads": 4}})  # an old manifest's resolved recipe
    assert direct.runtime.threads == 4 and direct.benchmark.threads is None
    assert apply_overrides(legacy, {"runtime.threads": 9}).runtime.threads == 9  # the round trip holds no conflict


def test_benchmark_and_runtime_threads_that_differ_are_refused():
    with pytest.raises(RecipeError, match=r"benchmark.threads \(3\) and runtime.threads \(4\) differ"):
        parse_recipe("name: x\nbenchmark: {threads: 3}\nruntime: {threads: 4}\n" + GATES)
    with pytest.raises(ValueError, match="deprecated alias"):
        Recipe(name="x", benchmark=BenchmarkConfig(threads=3), runtime=RuntimeConfig(threads=4))
    with pytest.raises(RecipeError, match="benchmark.threads"):  # a bad legacy value is named where it was written
        parse_recipe("name: x\nbenchmark: {threads: 0}\n" + GATES)


class _Stop(Exception):
    """Raised by the stand-in run_request: the test only needs the request."""


@pytest.fixture
def captured(monkeypatch):
    """Count recipe loads and file reads; capture the request the CLI builds instead of running it."""
    seen: dict = {"loads": 0, "reads": [], "requests": []}
    real_load, real_read = optkit.recipe.load_recipe, pathlib.Path.read_text

    def counting_load(*args, **kwargs):
        seen["loads"] += 1
        return real_load(*args, **kwargs)

    def counting_read(self, *args, **kwargs):
        seen["reads"].append(self.name)
        return real_read(self, *args, **kwargs)

    def capture(request, *args, **kwargs):
        seen["requests"].append(request)
        raise _Stop

    monkeypatch.setattr(optkit.recipe, "load_recipe", counting_load)
    monkeypatch.setattr(pathlib.Path, "read_text", counting_read)
    monkeypatch.setattr(optkit.pipeline, "run_request", capture)
    return seen


def test_convert_reads_the_recipe_once_into_one_request(tmp_path, captured):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(optkit.recipe.builtin_text("ner-int8"))
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    args = ["convert", str(model), "--recipe", str(recipe), "--threads", "3", "--search-budget", "5"]
    result = runner.invoke(app, [*args, "--set", "passes.fuse.num_heads=4", "--data", "d.conll", "-o", "out"])
    assert "internal error: _Stop" in result.output, result.output  # it got as far as run_request
    assert captured["loads"] == 1 and captured["reads"].count("mine.yaml") == 1
    (request,) = captured["requests"]
    assert isinstance(request, ConvertRequest) and request.source == model and str(request.output) == "out"
    assert request.recipe.runtime.threads == 3 and request.recipe.validation.data == "d.conll"
    assert request.recipe.passes[1].num_heads == 4 and request.recipe.passes[2].search_budget_s == 5


def test_a_set_of_a_pass_field_by_type_wins_over_the_flag(tmp_path, captured):
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    args = ["convert", str(model), "--recipe", "ner-int8", "--search-budget", "5"]
    result = runner.invoke(app, [*args, "--set", "passes.quantize-dynamic.search_budget_s=30"])
    assert "internal error: _Stop" in result.output, result.output  # it got as far as run_request
    assert captured["requests"][0].recipe.passes[2].search_budget_s == 30
    assert captured["loads"] == 1


def test_convert_with_a_pass_type_the_recipe_lacks_exits_2(tmp_path, captured):
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    result = runner.invoke(app, ["convert", str(model), "--recipe", "fp32", "--set", "passes.fp16.auto_block=false"])
    assert result.exit_code == 2 and not captured["requests"]
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("recipe error: override 'passes.fp16.auto_block'") and "its passes: simplify" in last
