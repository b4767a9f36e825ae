"""Markdown field tables of the recipe, generated from its JSON schema (``optkit recipes doc``).

``docs/recipes.md`` holds the output between :data:`BEGIN` and :data:`END`; a unit test regenerates
it in memory and fails when the file is out of date (``optkit recipes doc --update docs/recipes.md``
rewrites it).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

BEGIN = "<!-- generated: recipe fields -->"
END = "<!-- end generated -->"
_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "null", "object": "mapping"}
_BOUNDS = (
    ("minimum", "≥"),
    ("exclusiveMinimum", ">"),
    ("maximum", "≤"),
    ("exclusiveMaximum", "<"),
    ("minItems", "length ≥"),
)


class _FactoryDefaults(GenerateJsonSchema):
    """A schema generator that also records defaults built by ``default_factory`` (pydantic leaves
    them out), so that the tables show e.g. ``batch_sizes`` = ``[1, 8]``."""

    def default_schema(self, schema: Any) -> Any:
        """The field's schema, with a factory's value as its ``default``."""
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            schema = {k: v for k, v in schema.items() if k != "default_factory"} | {"default": factory()}
        return super().default_schema(schema)


def recipe_schema() -> dict[str, Any]:
    """The recipe JSON schema with every default filled in (``default_factory`` ones too)."""
    from optkit.recipe import Recipe

    return Recipe.model_json_schema(schema_generator=_FactoryDefaults)


def _ref(prop: dict[str, Any]) -> str | None:
    return prop["$ref"].rsplit("/", 1)[-1] if "$ref" in prop else None


def _type(prop: dict[str, Any]) -> str:
    """A short type for a schema property: ``int ≥ 1``, ``list[str]``, ``qint8 | quint8``, ``ExportConfig``."""
    if "$ref" in prop:
        text = f"`{_ref(prop)}`"
    elif "const" in prop:
        text = json.dumps(prop["const"])
    elif "enum" in prop:
        text = " | ".join(str(v) for v in prop["enum"])
    elif "oneOf" in prop:
        text = "one of: " + ", ".join(f"`{_ref(p)}`" for p in prop["oneOf"])
    elif "anyOf" in prop:
        text = " | ".join(_type(p) for p in prop["anyOf"])
    elif prop.get("type") == "array":
        text = f"list[{_type(prop.get('items', {}))}]"
    else:
        text = _TYPES.get(prop.get("type", ""), "any")
    bounds = [f"{sign} {prop[key]}" for key, sign in _BOUNDS if key in prop]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _default(name: str, prop: dict[str, Any], required: list[str]) -> str:
    if name in required:
        return "required"
    if "default" not in prop:
        return ""
    if isinstance(prop["default"], dict):
        return "its defaults"
    return f"`{json.dumps(prop['default'])}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _children(prop: dict[str, Any]) -> list[tuple[str, str]]:
    """``(model name, path suffix)`` of the models a property refers to, in schema order."""
    if (ref := _ref(prop)) is not None:  # "$ref" in prop
        return [(ref, "")]
    if "items" in prop:
        return [(m, "[]" + s) for m, s in _children(prop["items"])]
    found = []
    for alternative in prop.get("oneOf", []) + prop.get("anyOf", []):
        found += _children(alternative)
    return found


def field_tables(schema: dict[str, Any] | None = None) -> str:
    """Markdown: one table (field, type, default, description) per recipe section, top level first,
    then each section where the schema first reaches it (depth first, in field order)."""
    schema = schema or recipe_schema()
    parts: list[str] = []
    _section("Recipe", schema, "", schema.get("$defs", {}), set(), parts)
    return "\n".join(parts)


def _section(
    name: str, model: dict[str, Any], path: str, defs: dict[str, Any], seen: set[str], parts: list[str]
) -> None:
    """Append the table of ``model`` (reached at dotted ``path``), then those of the models it uses."""
    seen.add(name)
    props, required = model.get("properties", {}), model.get("required", [])
    const = props.get("type", {}).get("const")
    where = f"`{path}`, `type: {const}`" if const else (f"`{path}`" if path else "top level")
    parts += [f"### `{name}` ({where})", "", "| field | type | default | description |", "|---|---|---|---|"]
    for key, prop in props.items():
        parts.append(
            f"| `{key}` | {_cell(_type(prop))} | {_cell(_default(key, prop, required))} | "
            f"{_cell(prop.get('description', ''))} |"
        )
    parts.append("")
    base = f"{path.removesuffix('[]')}[type={const}]" if const else path
    for key, prop in props.items():
        for child, suffix in _children(prop):
            if child not in seen:
                _section(child, defs[child], f"{base + '.' if base else ''}{key}{suffix}", defs, seen, parts)


def replace_generated(text: str, tables: str) -> str:
    """``text`` with the part between :data:`BEGIN` and :data:`END` replaced by ``tables``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no '{BEGIN}' ... '{END}' block")
    return text[: start + len(BEGIN)] + "\n\n" + tables.rstrip() + "\n\n" + text[end:]
