"""Plan validation: file/line errors as for recipes, item resolution, targets without Ray refused."""

from __future__ import annotations

import pytest

from optkit.batch.plan import parse_plan, resolve_items
from optkit.batch.run import check_targets_local
from optkit.errors import PlanError
from optkit.recipe import TargetConfig

PLAN = """\
output: out
items:
  - source: a.onnx
    recipe: fp32
    colour: red
"""


def test_unknown_item_key_names_file_line_and_valid_keys():
    with pytest.raises(PlanError) as caught:
        parse_plan(PLAN, "plan.yaml")
    line = caught.value.one_line()
    assert "plan.yaml line 5: items.0.colour: unknown key 'colour'" in line
    assert "source" in line and "recipe" in line  # the valid keys are listed


@pytest.mark.parametrize(
    "text,expected",
    [
        ("items: []\n", "items"),
        ("- a\n", "a plan must be a YAML mapping"),
        ("items:\n  - source: [unclosed\n", "invalid YAML"),
        ("items:\n  - {source: a.onnx, name: '../escape'}\n", "name '../escape'"),
        ("items:\n  - {source: a.onnx, name: x}\n  - {source: b.onnx, name: x}\n", "unique"),
        ("items:\n  - source: a.onnx\n    target: {resources: {vnni: 0}}\n", "must be > 0"),
    ],
)
def test_hostile_plans_are_plan_errors(text, expected):
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "p.yaml")
    assert expected in caught.value.one_line()
    assert caught.value.exit_code == 2


def test_items_resolve_against_the_plan_folder(tmp_path):
    plan = parse_plan("output: out\ndefaults: {recipe: fp32}\nitems:\n  - {source: m/a.onnx, data: d.npz}\n")
    (item,) = resolve_items(plan, tmp_path)
    assert item.request.source == tmp_path.resolve() / "m" / "a.onnx"
    assert item.request.output_dir == tmp_path.resolve() / "out" / "a-fp32"
    assert item.request.recipe.validation.data == str(tmp_path.resolve() / "d.npz")


def test_item_without_recipe_and_bad_override_are_named(tmp_path):
    with pytest.raises(PlanError, match="names no recipe"):
        resolve_items(parse_plan("items:\n  - {source: a.onnx}\n"), tmp_path)
    plan = parse_plan("items:\n  - {source: a.onnx, recipe: fp32, name: n, overrides: {export.opset: 99}}\n")
    with pytest.raises(PlanError, match="plan item n: recipe error"):
        resolve_items(plan, tmp_path)


def test_two_items_writing_one_folder_are_refused(tmp_path):
    text = "defaults: {recipe: fp32}\nitems:\n  - {source: a.onnx, output: o}\n  - {source: b.onnx, output: o}\n"
    with pytest.raises(PlanError, match="same output folder"):
        resolve_items(parse_plan(text), tmp_path)


def test_a_target_without_ray_is_refused(tmp_path):
    text = "defaults: {recipe: fp32}\nitems:\n  - {source: a.onnx, target: {resources: {avx512_vnni: 1}}}\n"
    items = resolve_items(parse_plan(text), tmp_path)
    with pytest.raises(PlanError, match="only a Ray cluster"):
        check_targets_local(items)


def _recipe_with_target(tmp_path, resources: str) -> str:
    from optkit.recipe import builtin_text

    text = builtin_text("fp32").replace("name: fp32", "name: fp32-vnni", 1)
    (tmp_path / "vnni.yaml").write_text(f"{text}\ntarget: {{resources: {resources}}}\n")
    return "vnni.yaml"


def test_a_recipe_target_is_the_items_target_unless_the_item_names_one(tmp_path):
    recipe = _recipe_with_target(tmp_path, "{avx512_vnni: 1}")
    text = (
        f"items:\n  - {{source: a.onnx, recipe: {recipe}, name: from-recipe}}\n"
        f"  - {{source: a.onnx, recipe: {recipe}, name: own, target: {{resources: {{amx: 1}}}}}}\n"
    )
    first, second = resolve_items(parse_plan(text), tmp_path)
    assert first.target is not None and first.target.resources == {"avx512_vnni": 1}
    assert second.target is not None and second.target.resources == {"amx": 1}
    with pytest.raises(PlanError, match="from-recipe, own name a target"):
        check_targets_local([first, second])


def test_a_recipe_without_target_keeps_its_hash():
    from optkit.recipe import load_recipe

    recipe = load_recipe("fp32")
    assert "target" in recipe.model_dump()
    assert recipe.sha256() == recipe.model_copy(update={}).sha256()
    with_target = load_recipe("fp32").model_copy(update={"target": TargetConfig(resources={"vnni": 1})})
    assert with_target.sha256() != recipe.sha256()
