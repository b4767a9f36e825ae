"""The batch plan (``optkit batch PLAN.yaml``): models × recipes, validated by pydantic with the same
file/line errors as recipes (:func:`optkit.recipe.describe_validation_error`).

A plan file::

    output: optkit-out/plan          # root of the items' artifact folders (relative to the plan file)
    defaults:                        # merged under every item (an item's own keys win)
      overrides: {benchmark.batch_sizes: [1]}
    items:
      - source: sample_models/ner-minilm/model.pt
        recipe: ner-int8             # a built-in name or a .yaml path (relative to the plan file)
        data: sample_models/ner-minilm/data/test.conll
      - name: ner-fp16-vnni
        source: sample_models/ner-minilm/model.pt
        recipe: ner-fp16
        target: {resources: {avx512_vnni: 1}}   # validate and time it on a node that has this

Relative paths (source, recipe file, data, calibration data, the plan's ``output``) are resolved
against the plan file's folder, and an item's relative ``output`` against the plan's ``output``
folder, so a plan runs the same from any working directory. :func:`resolve_items` turns each
item into one :class:`~optkit.request.ConvertRequest` (its recipe loaded once, every override applied),
exactly what ``optkit convert`` would build.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from optkit.errors import OptkitError, PlanError
from optkit.recipe import (
    TargetConfig,
    apply_overrides,
    describe_validation_error,
    flag_overrides,
    load_recipe,
    load_yaml_mapping,
)
from optkit.request import ConvertRequest
from optkit.strict import StrictModel

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ItemDefaults(StrictModel):
    """Keys every item inherits unless it sets them (see :class:`PlanItem`)."""

    recipe: str | None = None
    data: str | None = None
    calibration_data: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    framework: str = "auto"
    target: TargetConfig | None = None
    strict: bool = False
    trust_pickle: bool = False
    trust_skops_types: list[str] = Field(default_factory=list)


class PlanItem(StrictModel):
    """One model × one recipe: one task, one artifact, exactly as ``optkit convert`` makes it.

    Attributes:
        source: the model file or folder (relative to the plan file).
        recipe: a built-in recipe name or a ``.yaml`` path (relative to the plan file).
        name: the item's name (summary rows, JUnit suite, default output folder); default
            ``<source stem>-<recipe name>``; unique within the plan.
        data / calibration_data: ``--data`` / ``--calibration-data``.
        overrides: dotted recipe keys → values (``--set``), merged over the defaults' overrides.
        output: the artifact folder (a relative one is under the plan's output); default
            ``<plan output>/<name>``.
        target: the hardware to validate and time on (needs ``--ray``).
    """

    source: str
    recipe: str | None = None
    name: str | None = None
    data: str | None = None
    calibration_data: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    output: str | None = None
    framework: str | None = None
    target: TargetConfig | None = None
    strict: bool | None = None
    trust_pickle: bool | None = None
    trust_skops_types: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not NAME.match(value):
            raise ValueError(f"name {value!r} must be letters, digits, '.', '_' or '-' (it names a folder)")
        return value


class Plan(StrictModel):
    """A batch plan: ``items`` (at least one), ``defaults`` and the ``output`` root."""

    output: str = Field("optkit-out", description="root folder of the items' artifacts")
    defaults: ItemDefaults = Field(default_factory=ItemDefaults)
    items: list[PlanItem] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_outputs(self) -> Plan:
        names = [item.name for item in self.items if item.name]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"item names must be unique: {', '.join(dup)} repeated")
        return self


@dataclass(frozen=True)
class ResolvedItem:
    """One plan item made concrete: its name, the request ``optkit convert`` would build, its target.

    Attributes:
        name: unique within the plan.
        request: the :class:`~optkit.request.ConvertRequest` (recipe resolved, paths absolute).
        target: the hardware it must be validated on, or None (any node, or this machine).
    """

    name: str
    request: ConvertRequest
    target: TargetConfig | None


def parse_plan(text: str, where: str = "<plan>") -> Plan:
    """Parse and validate plan YAML ``text``; ``where`` names it in errors.

    Raises:
        PlanError: invalid YAML, not a mapping, an unknown key, a wrong type, no items, repeated item
            names; the message names the file and line (and the valid keys for an unknown one).
    """
    data, node = load_yaml_mapping(
        text, where, PlanError, "a plan must be a YAML mapping with 'items'", "see docs/scale.md for a plan file"
    )
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(describe_validation_error(exc, where, node, Plan), "see docs/scale.md for a plan file") from exc


def load_plan(path: str | Path) -> Plan:
    """Read and validate the plan file ``path`` (see :func:`parse_plan`).

    Raises:
        PlanError: the file is missing or unreadable, or invalid as :func:`parse_plan` says.
    """
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"plan file not found: {path}", "check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read plan {path}: {exc}", "pass a readable UTF-8 YAML file") from exc
    return parse_plan(text, str(path))


def _under(base: Path, value: str | None) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else base / path)


def _recipe_spec(base: Path, spec: str) -> str:
    """A recipe file path resolved against the plan's folder; a built-in name as it is."""
    if spec.endswith((".yaml", ".yml")) or (base / spec).exists():
        return str(_under(base, spec))
    return spec


def output_root(plan: Plan, base: Path) -> Path:
    """The plan's ``output`` folder, resolved against the plan file's folder ``base``: where items
    write by default and where the plan's summaries go."""
    return Path(_under(base, plan.output) or base)


def resolve_items(plan: Plan, base: Path) -> list[ResolvedItem]:
    """Every item of ``plan`` as a :class:`ResolvedItem`: defaults merged, paths resolved against
    ``base`` (the plan file's folder), the recipe loaded with the overrides, ``data`` and
    ``calibration_data`` applied (each quantize-static pass), the output named. Nothing is run.

    Raises:
        PlanError: an item has no recipe (and the defaults none), two items share an output folder,
            or an item's recipe is invalid (the message names the item and the recipe's own error).
    """
    base = base.resolve()
    root = output_root(plan, base)
    resolved: list[ResolvedItem] = []
    outputs: dict[Path, str] = {}
    defaults = plan.defaults
    for index, item in enumerate(plan.items):
        label = item.name or f"items.{index}"
        spec = item.recipe or defaults.recipe
        if spec is None:
            raise PlanError(f"plan item {label} names no recipe", "give the item a recipe, or set defaults.recipe")
        overrides = {**defaults.overrides, **item.overrides}
        data = _under(base, item.data or defaults.data)
        if data is not None:
            overrides["validation.data"] = data
        try:
            recipe = load_recipe(_recipe_spec(base, spec), overrides)
            calibration = _under(base, item.calibration_data or defaults.calibration_data)
            if calibration is not None:
                keys = flag_overrides(
                    recipe,
                    "calibration_data",
                    "calibration_data",
                    calibration,
                    lambda c: c.type == "quantize-static",
                    "quantize-static pass",
                )
                recipe = apply_overrides(recipe, keys)
        except OptkitError as exc:
            raise PlanError(f"plan item {label}: {exc.one_line()}", "fix the item's recipe or overrides") from exc
        source = Path(_under(base, item.source) or item.source)
        name = item.name or f"{source.stem}-{recipe.name}"
        output = Path(str(_under(root, item.output))) if item.output else root / name
        if output in outputs:
            raise PlanError(
                f"plan items {outputs[output]} and {name} write the same output folder {output}",
                "give each item its own name or output",
            )
        outputs[output] = name
        request = ConvertRequest(
            source=source,
            recipe=recipe,
            output=output,
            framework=item.framework or defaults.framework,
            trust_pickle=item.trust_pickle if item.trust_pickle is not None else defaults.trust_pickle,
            trust_skops_types=tuple(
                item.trust_skops_types if item.trust_skops_types is not None else defaults.trust_skops_types
            ),
            overwrite=True,  # replaces only an optkit artifact (an out-of-date one: see resume.py)
            strict=item.strict if item.strict is not None else defaults.strict,
        )
        resolved.append(ResolvedItem(name, request, item.target or defaults.target or recipe.target))
    names = [r.name for r in resolved]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PlanError(f"plan items share a name: {', '.join(dup)}", "give each item its own name")
    return resolved
