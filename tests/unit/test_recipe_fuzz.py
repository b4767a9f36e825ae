"""Property test: any YAML text is either a valid recipe or a RecipeError, never another exception."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optkit.errors import RecipeError
from optkit.recipe import PASS_TYPES, Recipe, parse_recipe

KEYS = [
    "name",
    "description",
    "source",
    "export",
    "passes",
    "validation",
    "benchmark",
    "artifact",
    "type",
    "opset",
    "gates",
    "metric",
    "min",
    "max",
    "per_channel",
    "batch_sizes",
    "framework",
    *PASS_TYPES,
]
scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parses_or_recipe_error(text: str) -> None:
    try:
        assert isinstance(parse_recipe(text, "fuzz.yaml"), Recipe)
    except RecipeError as err:
        assert err.message and "\n" not in err.one_line()


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    _parses_or_recipe_error(text)


@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_recipe_shaped_yaml(data):
    _parses_or_recipe_error(yaml.safe_dump(data))
