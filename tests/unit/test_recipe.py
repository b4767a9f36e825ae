"""Recipe parsing: built-ins, errors that name file/line/valid choices, overrides, schema."""

from __future__ import annotations

import pytest

from optkit.errors import RecipeError
from optkit.recipe import FusePass, QuantizeDynamicPass, Recipe, builtin_names, load_recipe, parse_recipe


@pytest.mark.parametrize("name", ["ner-fp16", "ner-int8", "transformer-int8", "fp32"])
def test_builtin_recipes_validate(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    assert recipe.validation.gates, "every built-in recipe gates accuracy"


def test_builtin_names_lists_all():
    assert {"ner-fp16", "ner-int8", "transformer-int8", "fp32"} <= set(builtin_names())


def test_pass_union_picks_typed_configs():
    recipe = load_recipe("ner-int8")
    types = [type(p) for p in recipe.passes]
    assert FusePass in types and QuantizeDynamicPass in types
    q = next(p for p in recipe.passes if isinstance(p, QuantizeDynamicPass))
    assert q.per_channel is True and q.weight_type == "qint8"


def test_unknown_key_names_line_and_valid_keys():
    text = "name: x\npasses:\n  - type: quantize-dynamic\n    per_chanel: true\n"
    with pytest.raises(RecipeError) as err:
        parse_recipe(text, "my.yaml")
    msg = err.value.message
    assert "my.yaml line 4" in msg and "per_chanel" in msg and "per_channel" in msg


def test_unknown_pass_lists_valid_passes():
    with pytest.raises(RecipeError) as err:
        parse_recipe("name: x\npasses:\n  - type: quantise\n", "r.yaml")
    assert "quantise" in err.value.message and "quantize-dynamic" in err.value.message
    assert "line 3" in err.value.message


def test_unknown_top_level_key():
    with pytest.raises(RecipeError) as err:
        parse_recipe("name: x\nvalidaton: {}\n", "r.yaml")
    assert "validaton" in err.value.message and "validation" in err.value.message


def test_wrong_type_is_recipe_error():
    with pytest.raises(RecipeError) as err:
        parse_recipe("name: x\nexport:\n  opset: seventeen\n", "r.yaml")
    assert "export.opset" in err.value.message and "line 3" in err.value.message


def test_a_bad_set_value_is_placed_at_the_set_not_at_a_recipe_line():
    """A --set key the recipe file does not hold used to be reported at its enclosing YAML line."""
    with pytest.raises(RecipeError) as err:
        load_recipe("cnn-int8", {"passes.1.float_outputs": "maybe"})
    assert err.value.message.startswith("--set passes.1.float_outputs: ")
    assert "line" not in err.value.message
    with pytest.raises(RecipeError) as err:
        parse_recipe("name: x\nexport:\n  opset: 17\n", "r.yaml", {"export.opset": "seventeen"})
    assert err.value.message.startswith("--set export.opset: ")
    with pytest.raises(RecipeError) as err:  # a problem in the file itself keeps its line
        parse_recipe("name: x\nexport:\n  opset: seventeen\n", "r.yaml", {"validation.max_samples": 5})
    assert "r.yaml line 3: export.opset" in err.value.message


def test_gate_needs_exactly_one_bound():
    with pytest.raises(RecipeError):
        parse_recipe("name: x\nvalidation:\n  gates:\n    - {metric: cosine_min}\n")
    with pytest.raises(RecipeError) as err:
        parse_recipe("name: x\nvalidation:\n  gates:\n    - {metric: accuracy, min: 1}\n")
    assert "tag_agreement" in err.value.message  # lists the valid metrics


def test_invalid_yaml_names_line():
    with pytest.raises(RecipeError) as err:
        parse_recipe("name: x\npasses: [\n", "bad.yaml")
    assert "bad.yaml" in err.value.message and "invalid YAML" in err.value.message


def test_non_mapping_recipe():
    with pytest.raises(RecipeError):
        parse_recipe("- a\n- b\n")


def test_overrides_apply_before_validation():
    recipe = load_recipe("ner-int8", {"export.opset": 18, "benchmark.batch_sizes": [1, 32]})
    assert recipe.export.opset == 18 and recipe.benchmark.batch_sizes == [1, 32]
    with pytest.raises(RecipeError):
        load_recipe("ner-int8", {"export.opset": 3})


def test_unknown_builtin_lists_choices():
    with pytest.raises(RecipeError) as err:
        load_recipe("ner-int4")
    assert "ner-int8" in (err.value.hint or "")


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(str(tmp_path / "nope.yaml"))


def test_recipe_hash_is_stable_and_sensitive():
    a, b = load_recipe("ner-int8"), load_recipe("ner-int8")
    assert a.sha256() == b.sha256()
    assert load_recipe("ner-int8", {"export.opset": 18}).sha256() != a.sha256()


def test_json_schema_names_passes():
    schema = Recipe.model_json_schema()
    text = str(schema)
    for name in ("simplify", "fuse", "quantize-dynamic", "fp16"):
        assert name in text


@pytest.mark.parametrize(
    "gates", [[{"metric": "nonfinite_outputs", "max": 0}], [{"metric": "accuracy_source", "min": 0}]]
)
def test_a_recipe_whose_gates_never_compare_artifact_and_source_is_refused(gates):
    """Gates on one model alone (NaN count, the source's own accuracy) are no evidence that the
    artifact computes what the source computes."""
    with pytest.raises(RecipeError, match="no gate that compares the artifact with the source model"):
        load_recipe("sklearn-fp32", {"validation.gates": gates})


def test_builtin_recipes_use_runtime_threads_not_the_deprecated_alias():
    """``benchmark.threads`` is a deprecated alias of ``runtime.threads``; the built-ins set the real field."""
    from importlib import resources

    import yaml

    files = [f for f in resources.files("optkit.builtin_recipes").iterdir() if f.name.endswith(".yaml")]
    assert len(files) >= 13
    for file in files:
        data = yaml.safe_load(file.read_text())
        assert "threads" not in (data.get("benchmark") or {}), file.name
        assert (data.get("runtime") or {}).get("threads", 2) >= 1, file.name
