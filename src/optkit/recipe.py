"""Recipes: the typed, validated description of one conversion.

A recipe is YAML validated by pydantic. An unknown key or pass name is a :class:`RecipeError` that
names the file, the line and the valid choices. ``--recipe NAME`` picks a built-in recipe (a YAML
file in ``optkit/builtin_recipes``); ``--recipe path.yaml`` a file of the user's.

The JSON schema (``optkit recipes schema``) lets editors complete and check recipe files.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from optkit.errors import RecipeError, UsageError

BUILTIN_PACKAGE = "optkit.builtin_recipes"


class StrictModel(BaseModel):
    """Base for every recipe section: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- source & export
class SourceConfig(StrictModel):
    """Which framework loads the source model. ``auto`` detects it from the file or folder."""

    framework: Literal["auto", "torch", "tensorflow", "paddle", "sklearn", "onnx"] = "auto"


class ExportConfig(StrictModel):
    """Framework → ONNX export settings.

    ``check_atol``/``check_rtol``: right after export the ONNX model and the source model run on
    the first validation batch; an output outside ``|onnx - src| <= atol + rtol * |src|``
    (numpy.allclose semantics) is an :class:`~optkit.errors.ExportError`, so an exporter that
    "succeeds with a warning" but computes something else never reaches the later passes.
    """

    opset: int = Field(17, ge=9, le=21, description="ONNX opset version of the default domain")
    dynamic_axes: bool = Field(True, description="export batch and sequence axes as dynamic")
    check_atol: float = Field(1e-3, gt=0)
    check_rtol: float = Field(1e-3, ge=0)


# --------------------------------------------------------------------------- passes
class SimplifyPass(StrictModel):
    """onnxsim (constant folding, shape inference, graph optimizers). If onnxsim fails, the model
    is kept unchanged and the reason is recorded in the report."""

    type: Literal["simplify"]
    perform_optimization: bool = Field(
        True,
        description="run onnxsim's graph optimizers; transformer recipes turn them off because "
        "MatMul+Add→Gemm rewrites hide the patterns ORT's attention fusion matches",
    )
    skipped_optimizers: list[str] = Field(default_factory=list)


class FusePass(StrictModel):
    """ONNX Runtime transformer fusions (``onnxruntime.transformers.optimizer.optimize_model``).

    ``model_type``, ``num_heads`` and ``hidden_size`` default to the source model's config.
    """

    type: Literal["fuse"]
    model_type: str = Field("auto", description="'auto' (from the model config) or e.g. 'bert'")
    num_heads: int = Field(0, ge=0, description="0 = from the model config")
    hidden_size: int = Field(0, ge=0, description="0 = from the model config")
    opt_level: int = Field(0, ge=0, le=99, description="ORT graph optimization level applied too")
    require_attention: bool = Field(
        False, description="fail (instead of warn) when a transformer gets 0 Attention fusions"
    )


class Int8SearchSpace(StrictModel):
    """What the accuracy-aware int8 search tries (see ``docs/recipes.md``, "Accuracy-aware search").

    Stage 1 tries every combination of ``weight_types`` × ``per_channel`` × ``reduce_range`` on the
    ORT default op types. Only when none of them passes: stage 2 (``op_type_subsets``) leaves out
    one quantizable op type at a time from the most accurate stage-1 setting, and stage 3
    (``node_fallback``) keeps its most sensitive nodes in fp32 (1, 2, 4, … of them) until the gates
    hold. The fastest passing candidate wins.
    """

    weight_types: list[Literal["qint8", "quint8"]] = Field(default_factory=lambda: ["qint8", "quint8"], min_length=1)
    per_channel: list[bool] = Field(default_factory=lambda: [True, False], min_length=1)
    reduce_range: list[bool] = Field(default_factory=lambda: [False, True], min_length=1)
    op_type_subsets: bool = Field(True, description="also try leaving out each quantizable op type")
    node_fallback: bool = Field(True, description="keep the most sensitive nodes in fp32 when nothing passes")
    allow_fp32: bool = Field(
        False, description="accept a model with every node kept in fp32 when no int8 candidate passes")
    sensitivity_samples: int = Field(16, ge=1, description="validation samples used to rank node sensitivity")
    latency_tolerance: float = Field(
        0.05, ge=0, le=1, description="candidates within this fraction of the fastest count as equally fast; "
        "the earliest in search order wins (keeps the choice deterministic despite timing noise)")


class QuantizeDynamicPass(StrictModel):
    """Dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``): weights are
    quantized offline, activations at run time. Works on fused models (com.microsoft ops).

    With ``search: accuracy-aware`` the settings below are ignored: optkit searches
    ``search_space`` for the fastest candidate that meets the recipe's accuracy gates.
    """

    type: Literal["quantize-dynamic"]
    weight_type: Literal["qint8", "quint8"] = "qint8"
    per_channel: bool = Field(True, description="one scale per output channel (more accurate)")
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI overflow")
    op_types: list[str] | None = Field(None, description="op types to quantize; null = ORT default")
    nodes_to_exclude: list[str] = Field(default_factory=list)
    search: Literal["off", "accuracy-aware"] = Field(
        "off", description="'accuracy-aware': search settings and fp32 fallback nodes against the accuracy gates")
    search_space: Int8SearchSpace = Field(default_factory=Int8SearchSpace)
    search_budget_s: float = Field(900.0, gt=0, description="wall-time budget of the search, seconds")


class QuantizeStaticPass(StrictModel):
    """Static int8 quantization with calibration (``onnxruntime.quantization.quantize_static``)."""

    type: Literal["quantize-static"]
    calibration_data: str | None = Field(None, description=".npz/.conll/.txt; null = validation data (warned)")
    calibration_samples: int = Field(200, ge=1)
    calibrate_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    quant_format: Literal["qdq", "qoperator"] = "qdq"
    per_channel: bool = True
    activation_type: Literal["quint8", "qint8"] = "quint8"
    weight_type: Literal["qint8", "quint8"] = "qint8"
    op_types: list[str] | None = None
    nodes_to_exclude: list[str] = Field(default_factory=list)


class Fp16Pass(StrictModel):
    """float32 → float16 conversion (``onnxruntime.transformers.float16``)."""

    type: Literal["fp16"]
    keep_io_types: bool = Field(True, description="keep float32 model inputs and outputs")
    op_block_list: list[str] | None = Field(
        None, description="op types kept in float32; null = onnxruntime's default list"
    )
    node_block_list: list[str] = Field(default_factory=list)
    auto_block: bool = Field(
        True, description="run the fp16 model on validation data; nodes that overflow fp16 (|x| > 65504) or "
        "produce NaN/Inf are added to node_block_list and the conversion is retried")
    max_block_rounds: int = Field(10, ge=1, description="conversion retries of auto_block")
    search_budget_s: float = Field(900.0, gt=0, description="wall-time budget of auto_block, seconds")
    check_samples: int = Field(64, ge=1, description="validation samples auto_block runs")


PassConfig = Annotated[
    Union[SimplifyPass, FusePass, QuantizeDynamicPass, QuantizeStaticPass, Fp16Pass], Field(discriminator="type")
]
PASS_TYPES = ("simplify", "fuse", "quantize-dynamic", "quantize-static", "fp16")

# --------------------------------------------------------------------------- gates
AccuracyMetric = Literal[
    "tag_agreement",
    "label_agreement",
    "entity_f1_drop",
    "cosine_min",
    "cosine_mean",
    "pooled_cosine_min",
    "pooled_cosine_mean",
    "max_abs_error",
    "max_rel_error",
    "nonfinite_outputs",
    "accuracy_source",
    "accuracy_artifact",
]


#: metrics that compare the artifact's outputs with the source model's on the same inputs; the
#: others (``nonfinite_outputs``, ``accuracy_source``, ``accuracy_artifact``) describe one model alone,
#: so a run is approved only if at least one gate on these was evaluated
FIDELITY_METRICS = frozenset({"tag_agreement", "label_agreement", "entity_f1_drop", "cosine_min", "cosine_mean",
                              "pooled_cosine_min", "pooled_cosine_mean", "max_abs_error", "max_rel_error",
                              "accuracy_drop"}) & frozenset(get_args(AccuracyMetric))


class AccuracyGate(StrictModel):
    """A threshold on one accuracy metric (see ``docs/recipes.md`` for each metric's definition).

    Exactly one of ``min``/``max``: the gate passes when ``value >= min`` or ``value <= max``.
    """

    metric: AccuracyMetric
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> "AccuracyGate":
        if (self.min is None) == (self.max is None):
            raise ValueError("a gate needs exactly one of 'min' or 'max'")
        return self


class SpeedGate(StrictModel):
    """A minimum speed-up (source p50 latency / artifact p50 latency) at one input shape.

    ``device``: where the claim is measured. A gate whose device is absent (e.g. ``cuda`` on a
    CPU-only machine) is reported ``skipped`` with the reason, never faked.
    """

    metric: Literal["speedup"] = "speedup"
    batch_size: int = Field(1, ge=1)
    sequence_length: int | None = Field(None, ge=1, description="null = the first benchmarked")
    min: float = Field(gt=0)
    device: Literal["cpu", "cuda"] = "cpu"


class ValidationConfig(StrictModel):
    """Accuracy validation of the final model against the source framework on real inputs.

    ``data``: a CoNLL file (``token<TAB>tag`` lines), a text file (one example per line) or an
    ``.npz`` of input arrays. Without data optkit generates random inputs as a last resort and
    says so in the report; gates that need labels are then skipped.
    """

    data: str | None = None
    max_samples: int = Field(512, ge=1)
    batch_size: int = Field(32, ge=1)
    sequence_length: int = Field(128, ge=2, description="tokens; longer examples are truncated")
    gates: list[AccuracyGate] = Field(default_factory=list)


class BenchmarkConfig(StrictModel):
    """Side-by-side latency of source and artifact: same inputs, same threads, warm-up, medians."""

    batch_sizes: list[int] = Field(default_factory=lambda: [1, 8], min_length=1)
    sequence_lengths: list[int] = Field(default_factory=lambda: [128], min_length=1)
    warmup: int = Field(5, ge=0)
    iterations: int = Field(20, ge=3)
    threads: int = Field(2, ge=1, description="intra-op threads for both source and artifact")
    gates: list[SpeedGate] = Field(default_factory=list)


class ArtifactConfig(StrictModel):
    """How the approved artifact is written."""

    external_data_threshold_mb: float = Field(
        1800.0, gt=0, description="weights go to model.onnx.data above this size (protobuf: 2 GB)"
    )


class Recipe(StrictModel):
    """A complete conversion: source → export → passes → validation → benchmark → artifact."""

    name: str
    description: str = ""
    source: SourceConfig = Field(default_factory=SourceConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    passes: list[PassConfig] = Field(default_factory=list)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig)
    artifact: ArtifactConfig = Field(default_factory=ArtifactConfig)

    def sha256(self) -> str:
        """sha256 (hex) of the resolved recipe as canonical JSON (sorted keys)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- loading
def builtin_names() -> list[str]:
    """Names of the built-in recipes, sorted."""
    folder = resources.files(BUILTIN_PACKAGE)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def builtin_text(name: str) -> str:
    """The YAML text of built-in recipe ``name``. Raises RecipeError for an unknown name."""
    if name not in builtin_names():
        raise RecipeError(
            f"unknown recipe '{name}'",
            f"valid built-in recipes: {', '.join(builtin_names())}; or pass a .yaml file",
        )
    return resources.files(BUILTIN_PACKAGE).joinpath(f"{name}.yaml").read_text()


def load_recipe(spec: str, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load a recipe from a built-in name or a YAML path, apply overrides, validate.

    Args:
        spec: a built-in name (``ner-int8``) or a path ending in ``.yaml``/``.yml``.
        overrides: dotted keys to values, applied before validation, e.g.
            ``{"export.opset": 18, "benchmark.batch_sizes": [1, 32]}``.

    Raises:
        RecipeError: unknown name, unreadable file, invalid YAML, unknown key/pass, wrong type, no
            accuracy gate (``validation.gates`` empty); the message names the file and line and
            the valid choices.
    """
    path = Path(spec)
    if spec.endswith((".yaml", ".yml")) or path.exists():
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {spec}", "check the path, or use a built-in name")
        try:
            text, where = path.read_text(), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipeError(f"cannot read recipe {spec}: {exc}", "pass a readable UTF-8 YAML file") from exc
    else:
        text, where = builtin_text(spec), f"built-in recipe '{spec}'"
    return parse_recipe(text, where, overrides)


def parse_recipe(text: str, where: str = "<recipe>", overrides: dict[str, Any] | None = None) -> Recipe:
    """Parse and validate recipe YAML ``text``; ``where`` names it in errors. See :func:`load_recipe`."""
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"{where}{line}: invalid YAML: {problem}", "fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe must be a YAML mapping, got {type(data).__name__}",
                          "start from `optkit recipes show fp32`")
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value, where)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(_describe(exc, where, node), _hint(exc)) from exc
    if not recipe.validation.gates:
        raise RecipeError(f"{where}: validation.gates is empty: a recipe needs at least one accuracy gate, or "
                          "nothing would check that the artifact computes what the source model computes",
                          "keep the recipe's gates (change a threshold with --set validation.gates.0.min=...)")
    if not any(g.metric in FIDELITY_METRICS for g in recipe.validation.gates):
        metrics = ", ".join(g.metric for g in recipe.validation.gates)
        raise RecipeError(f"{where}: validation.gates ({metrics}) has no gate that compares the artifact with the "
                          "source model, so nothing would check that the artifact computes what the source computes",
                          f"add one of {', '.join(sorted(FIDELITY_METRICS))}")
    return recipe


def apply_overrides(recipe: Recipe, overrides: dict[str, Any]) -> Recipe:
    """A copy of ``recipe`` with dotted ``overrides`` applied and validated again (RecipeError)."""
    return parse_recipe(yaml.safe_dump(recipe.model_dump(mode="json")), f"recipe '{recipe.name}'", overrides)


def _set_dotted(data: dict, key: str, value: Any, where: str) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists; a numeric part indexes a list (e.g. ``passes.1.per_channel``)."""
    parts = key.split(".")
    target: Any = data
    for part in parts[:-1]:
        if isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        elif isinstance(target, dict):
            target = target.setdefault(part, {})
        else:
            target = None
        if not isinstance(target, (dict, list)):
            raise RecipeError(f"override '{key}': '{part}' is not a section or list index in {where}",
                              "override keys look like validation.max_samples or passes.1.per_channel")
    last = parts[-1]
    if isinstance(target, list):
        if not (last.isdigit() and int(last) < len(target)):
            raise RecipeError(f"override '{key}': no item {last} in {where}", "list indices start at 0")
        target[int(last)] = value
    else:
        target[last] = value


def searches(config: Any) -> bool:
    """True for a pass that runs a time-bounded search (``search_budget_s`` applies): a
    ``quantize-dynamic`` pass with ``search: accuracy-aware``, or an ``fp16`` pass with ``auto_block``."""
    return (config.type == "quantize-dynamic" and config.search == "accuracy-aware") or (
        config.type == "fp16" and config.auto_block)


def flag_overrides(recipe: Recipe, flag: str, key: str, value: Any, applies: Callable[[Any], bool],
                   needs: str) -> dict[str, Any]:
    """``{"passes.<i>.<key>": value}`` for every pass of ``recipe`` that ``applies`` accepts: what a
    command-line flag such as ``--calibration-data`` sets.

    Args:
        recipe: the recipe the flag applies to (with ``--set`` overrides already applied).
        flag: the flag, for the message, e.g. ``"--search-budget"``.
        key: the pass field it sets, e.g. ``"search_budget_s"``.
        value: the flag's value.
        applies: which passes take it, e.g. ``searches``.
        needs: the passes it needs, in words, e.g. ``"a quantize-static pass"``.

    Raises:
        UsageError: no pass of the recipe takes the flag (it would be silently ignored).
    """
    found = {f"passes.{i}.{key}": value for i, config in enumerate(recipe.passes) if applies(config)}
    if not found:
        passes = ", ".join(c.type for c in recipe.passes) or "none"
        raise UsageError(f"{flag} has no effect: recipe '{recipe.name}' has no {needs} (its passes: {passes})",
                         f"drop {flag}, or choose a recipe with {needs}")
    return found


def _line_of(node: Any, loc: tuple) -> int | None:
    """1-based YAML line of the deepest node on the pydantic error location ``loc``."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if part in PASS_TYPES:
            continue  # a discriminator tag in the location, not a YAML key
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == part]
            if not match:
                keys = [k for k, _ in node.value if k.value == part]
                return keys[0].start_mark.line + 1 if keys else line
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            continue  # discriminator tags in loc have no YAML node
        line = node.start_mark.line + 1
    return line


def _fields_at(loc: tuple) -> list[str] | None:
    """Valid keys of the model that owns the last element of ``loc`` (None if unknown)."""
    pass_models = {"simplify": SimplifyPass, "fuse": FusePass, "quantize-dynamic": QuantizeDynamicPass,
                   "quantize-static": QuantizeStaticPass, "fp16": Fp16Pass}
    model: Any = Recipe
    for part in loc[:-1]:
        if part in pass_models:
            model = pass_models[part]
        elif not isinstance(part, int):
            field = getattr(model, "model_fields", {}).get(part)
            model = _model_in(field.annotation) if field else None
    return list(model.model_fields) if model is not None else None


def _model_in(annotation: Any) -> Any:
    """The first pydantic model class inside a (possibly nested) type annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _describe(exc: ValidationError, where: str, node: Any) -> str:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = _line_of(node, loc)
        dotted = ".".join(str(p) for p in loc if p not in PASS_TYPES) or "<top>"
        at = f"{where} line {line}" if line else where
        if err["type"] == "extra_forbidden":
            valid = _fields_at(loc)
            msg = f"unknown key '{loc[-1]}'" + (f" (valid: {', '.join(valid)})" if valid else "")
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown pass type {err['input']!r} (valid: {', '.join(PASS_TYPES)})"
        elif err["type"] == "union_tag_not_found":
            msg = f"a pass needs a 'type' (valid: {', '.join(PASS_TYPES)})"
        elif err["type"] == "literal_error":
            msg = f"invalid value {err['input']!r} ({err['msg'].replace('Input should be', 'expected')})"
        else:
            msg = err["msg"]
        problems.append(f"{at}: {dotted}: {msg}")
    return "; ".join(problems)


def _hint(exc: ValidationError) -> str:
    return "see `optkit recipes show fp32` for a complete recipe, or docs/recipes.md"
