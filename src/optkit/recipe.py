"""Recipes: the typed, validated description of one conversion.

A recipe is YAML validated by pydantic. An unknown key or pass name is a :class:`RecipeError` that
names the file, the line and the valid choices. ``--recipe NAME`` picks a built-in recipe (a YAML
file in ``optkit/builtin_recipes``); ``--recipe path.yaml`` a file of the user's.

The JSON schema (``optkit recipes schema``) lets editors complete and check recipe files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from optkit.errors import OptkitError, RecipeError, UsageError
from optkit.pass_configs import (  # re-exported (``X as X``): ``from optkit.recipe import FusePass`` keeps working
    PASS_CONFIGS,
    PASS_TYPES,
    PassConfig,
)
from optkit.pass_configs import Fp16Pass as Fp16Pass
from optkit.pass_configs import FusePass as FusePass
from optkit.pass_configs import Int8SearchSpace as Int8SearchSpace
from optkit.pass_configs import QuantizeDynamicPass as QuantizeDynamicPass
from optkit.pass_configs import QuantizeStaticPass as QuantizeStaticPass
from optkit.pass_configs import SimplifyPass as SimplifyPass
from optkit.pass_configs import SmoothPass as SmoothPass
from optkit.pass_configs import TuneSessionPass as TuneSessionPass
from optkit.strict import StrictModel

BUILTIN_PACKAGE = "optkit.builtin_recipes"


# --------------------------------------------------------------------------- source & export
class SourceConfig(StrictModel):
    """Which framework loads the source model. ``auto`` detects it from the file or folder."""

    framework: Literal["auto", "torch", "tensorflow", "paddle", "sklearn", "onnx"] = Field(
        "auto",
        description="framework that loads the source model; 'auto' = detected from the file or "
        "folder; --framework overrides",
    )


class ExportConfig(StrictModel):
    """Framework → ONNX export settings.

    ``check_atol``/``check_rtol``: right after export the ONNX model and the source model run on
    the first validation batch; an output outside ``|onnx - src| <= atol + rtol * |src|``
    (numpy.allclose semantics) is an :class:`~optkit.errors.ExportError`, so an exporter that
    "succeeds with a warning" but computes something else never reaches the later passes.
    """

    opset: int = Field(17, ge=9, le=21, description="ONNX opset version of the default domain; --opset overrides")
    dynamic_axes: bool = Field(True, description="export batch (axis 0) and sequence (axis 1) axes as dynamic")
    check_atol: float = Field(
        1e-3,
        gt=0,
        description="absolute tolerance of the post-export check (ONNX vs source on the first validation batch)",
    )
    check_rtol: float = Field(1e-3, ge=0, description="relative tolerance of the post-export check")


# --------------------------------------------------------------------------- passes
# Each pass's config is ``optkit/pass_configs/<name>.py`` (its run: ``optkit/passes/<name>.py``); the
# catalog (``optkit.pass_configs``) derives the union, the names and the registry from one list.

# --------------------------------------------------------------------------- gates
AccuracyMetric = Literal[
    "tag_agreement",
    "label_agreement",
    "top1_agreement",
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
FIDELITY_METRICS = frozenset(
    {
        "tag_agreement",
        "label_agreement",
        "top1_agreement",
        "entity_f1_drop",
        "cosine_min",
        "cosine_mean",
        "pooled_cosine_min",
        "pooled_cosine_mean",
        "max_abs_error",
        "max_rel_error",
        "accuracy_drop",
    }
) & frozenset(get_args(AccuracyMetric))


class AccuracyGate(StrictModel):
    """A threshold on one accuracy metric (see ``docs/recipes.md`` for each metric's definition).

    Exactly one of ``min``/``max``: the gate passes when ``value >= min`` or ``value <= max``.
    """

    metric: AccuracyMetric = Field(description="accuracy metric (definitions: docs/recipes.md, Accuracy metrics)")
    min: float | None = Field(None, description="the gate passes when metric >= min (set min or max)")
    max: float | None = Field(None, description="the gate passes when metric <= max (set min or max)")

    @model_validator(mode="after")
    def _one_bound(self) -> AccuracyGate:
        if (self.min is None) == (self.max is None):
            raise ValueError("a gate needs exactly one of 'min' or 'max'")
        return self


class SpeedGate(StrictModel):
    """A minimum speed-up (source p50 latency / artifact p50 latency) at one input shape.

    Read from the speed-up's 95 % confidence interval over rounds: ``passed`` when the whole
    interval is >= ``min``, ``failed`` when it is wholly below, otherwise ``inconclusive`` (after
    re-measuring within ``benchmark.max_rounds`` / ``benchmark.budget_s``); an inconclusive gate
    does not approve the artifact.

    ``device``: where the claim is measured. A gate whose device is absent (e.g. ``cuda`` on a
    CPU-only machine) is reported ``skipped`` with the reason, never faked.
    """

    metric: Literal["speedup"] = Field("speedup", description="source p50 latency / artifact p50 latency")
    batch_size: int = Field(1, ge=1, description="batch size the speed-up is read at (one of benchmark.batch_sizes)")
    sequence_length: int | None = Field(
        None, ge=1, description="tokens; null = the first of benchmark.sequence_lengths"
    )
    min: float = Field(gt=0, description="minimum speed-up (×) for the gate to pass")
    device: Literal["cpu", "cuda"] = Field(
        "cpu", description="where the speed-up is measured; absent device = gate skipped (reported)"
    )


class ValidationConfig(StrictModel):
    """Accuracy validation of the final model against the source framework on real inputs.

    ``data``: a CoNLL file (``token<TAB>tag`` lines), a text file (one example per line) or an
    ``.npz`` of input arrays. Without data optkit generates random inputs as a last resort and
    says so in the report; gates that need labels are then skipped.
    """

    data: str | None = Field(
        None,
        description=".conll/.txt/.npz validation data; null = random inputs "
        "(warned, label gates skipped); --data overrides",
    )
    max_samples: int = Field(
        512, ge=1, description="validation examples used (the first ones); --max-samples overrides"
    )
    batch_size: int = Field(32, ge=1, description="examples per validation batch")
    sequence_length: int = Field(128, ge=2, description="tokens; longer examples are truncated")
    padding: Literal["per-batch", "fixed", "both"] = Field(
        "both",
        description="how token inputs are padded for the accuracy gates: 'per-batch' (each batch to its "
        "longest example, as a server padding each request), 'fixed' (the whole set to one length), "
        "'both' (each gated metric's worse value counts; dynamic int8 scales see the padding)",
    )
    gates: list[AccuracyGate] = Field(
        default_factory=list, description="accuracy gates, all must pass; a recipe needs at least one"
    )


class BenchmarkConfig(StrictModel):
    """Side-by-side latency of source and artifact: same inputs, same threads, warm-up, medians,
    alternating rounds with a 95 % confidence interval of the speed-up (docs/benchmarks.md)."""

    batch_sizes: list[int] = Field(
        default_factory=lambda: [1, 8], min_length=1, description="batch sizes timed; --batch-sizes overrides"
    )
    sequence_lengths: list[int] = Field(
        default_factory=lambda: [128],
        min_length=1,
        description="sequence lengths (tokens) timed; --sequence-lengths overrides",
    )
    warmup: int = Field(
        5, ge=0, description="untimed calls per shape and model before its first block (1 before each later block)"
    )
    iterations: int = Field(
        20, ge=3, description="timed calls per block (one block per model per round); p50 in ms over every round"
    )
    rounds: int = Field(
        5,
        ge=5,
        description="alternating rounds (source block, then artifact block) per shape; the speed-up's 95 % "
        "interval is a bootstrap over rounds",
    )
    max_rounds: int = Field(
        15,
        ge=5,
        description="the most rounds at a shape while a speed gate there is inconclusive (>= rounds)",
    )
    budget_s: float = Field(
        60.0,
        ge=0,
        description="seconds a shape may spend on rounds beyond `rounds` while a speed gate there is "
        "inconclusive; 0 = never re-measure",
    )
    real_length: bool = Field(
        True,
        description="also time source and artifact over the real validation batches at each batch size, "
        "each batch padded to its own longest example (images and tables: as they are); throughput in "
        "samples/s with a 95 % interval of the ratio over the same rounds",
    )
    real_length_batches: int = Field(
        4,
        ge=1,
        le=1000,
        description="the most real batches per block (one pass of each model per round) in the "
        "real-length timing, the first ones of the validation set",
    )
    scan_max_batch: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="time the artifact alone at batch 1, 2, 4, ... up to this size (at the first sequence "
        "length) and report the batch size of the best throughput; unset = no scan",
    )
    scan_budget_s: float = Field(
        8.0,
        ge=0,
        description="seconds after which the batch-size scan starts no larger batch size (the first is always timed)",
    )
    threads: int | None = Field(
        None,
        ge=1,
        exclude=True,
        description="deprecated alias of runtime.threads (moved there when the recipe is read; "
        "setting both to different values is an error)",
    )
    gates: list[SpeedGate] = Field(
        default_factory=list,
        description="speed gates; none = speed is reported, not gated. A gate passes when the whole 95 % "
        "interval of the speed-up clears `min`, fails when it is wholly below, else is inconclusive",
    )

    @model_validator(mode="after")
    def _round_limits(self) -> BenchmarkConfig:
        if self.max_rounds < self.rounds:
            raise ValueError(f"max_rounds ({self.max_rounds}) must be >= rounds ({self.rounds})")
        return self


class RuntimeConfig(StrictModel):
    """Run-wide runtime settings: they apply to every model optkit runs in one conversion (the source
    framework's runner, ONNX Runtime for the export check, the searches, validation and the
    benchmark), so that every figure is measured under the same conditions."""

    threads: int = Field(
        2,
        ge=1,
        description="intra-op threads of every runner: the source framework, ONNX Runtime and the "
        "searches; --threads overrides",
    )


class ArtifactConfig(StrictModel):
    """How the approved artifact is written."""

    external_data_threshold_mb: float = Field(
        1800.0,
        gt=0,
        description="MB (10^6 bytes): weights go to model.onnx.data above this size (protobuf caps a message at 2 GB)",
    )


class TargetConfig(StrictModel):
    """The hardware a model must be validated and timed on (a Ray node that has it): set by a recipe
    (``target:``) or a batch plan item (the item's wins), placed by ``optkit batch --ray``.

    Attributes:
        resources: Ray custom resources the node must offer, e.g. ``{"avx512_vnni": 1}`` (declared
            with ``ray start --resources='{"avx512_vnni": 1}'``).
        accelerator_type: a Ray accelerator type (``accelerator_type:<T>`` resource), e.g. ``"A100"``.
        num_cpus: CPUs the item's task reserves on that node (default 1).
    """

    resources: dict[str, float] = Field(default_factory=dict, description="Ray custom resources the node must have")
    accelerator_type: str | None = Field(None, description="Ray accelerator type, e.g. A100")
    num_cpus: float = Field(1.0, gt=0, description="CPUs the item's task reserves")

    @field_validator("resources")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if v <= 0]
        if bad:
            raise ValueError(f"resource amounts must be > 0 ({', '.join(bad)})")
        return value

    def ray_resources(self) -> dict[str, float]:
        """Every resource the task needs, as Ray names them (``CPU`` and ``accelerator_type:<T>``
        included)."""
        need = {"CPU": self.num_cpus, **self.resources}
        if self.accelerator_type:
            need[f"accelerator_type:{self.accelerator_type}"] = 0.001
        return need


class Recipe(StrictModel):
    """A complete conversion: source → export → passes → validation → benchmark → artifact."""

    name: str = Field(description="recipe name, recorded in the report and manifest")
    description: str = Field("", description="free text, shown by `optkit recipes list`")
    source: SourceConfig = Field(default_factory=SourceConfig, description="how the source model is loaded")
    export: ExportConfig = Field(default_factory=ExportConfig, description="framework → ONNX export")
    passes: list[PassConfig] = Field(
        default_factory=list, description="ONNX → ONNX passes, run in order; each one's `type` picks the pass"
    )
    validation: ValidationConfig = Field(
        default_factory=ValidationConfig, description="accuracy of the final model against the source framework"
    )
    benchmark: BenchmarkConfig = Field(
        default_factory=BenchmarkConfig, description="latency of source and artifact side by side"
    )
    runtime: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="run-wide runtime settings (threads) of every model run"
    )
    artifact: ArtifactConfig = Field(default_factory=ArtifactConfig, description="how the artifact is written")
    target: TargetConfig | None = Field(
        None,
        description="hardware to validate and time on (Ray resources); `optkit batch --ray` places the run on a "
        "node that has it, `optkit convert` measures on this machine and says so",
    )

    @model_validator(mode="after")
    def _threads_alias(self) -> Recipe:
        """Move the deprecated ``benchmark.threads`` to ``runtime.threads`` (one place holds it)."""
        legacy = self.benchmark.threads
        if legacy is None:
            return self
        if "threads" in self.runtime.model_fields_set and self.runtime.threads != legacy:
            raise ValueError(
                f"benchmark.threads ({legacy}) and runtime.threads ({self.runtime.threads}) differ: "
                "benchmark.threads is a deprecated alias of runtime.threads; set runtime.threads only"
            )
        self.runtime.threads = legacy
        self.benchmark.threads = None
        return self

    @model_validator(mode="after")
    def _tune_session_last(self) -> Recipe:
        """``tune-session`` measures the final model's session settings: once, as the last pass
        (a later pass would change the model they were chosen for)."""
        types = [p.type for p in self.passes]
        if "tune-session" in types and (types.count("tune-session") > 1 or types[-1] != "tune-session"):
            raise ValueError(
                f"tune-session must be the last pass, once (passes: {', '.join(types)}): it tunes the "
                "final model's session settings"
            )
        return self

    def sha256(self) -> str:
        """sha256 (hex) of the resolved recipe as canonical JSON (sorted keys)."""
        resolved = self.model_dump(mode="json")
        if resolved.get("target") is None:  # recipes without a target keep the hash they had before it existed
            resolved.pop("target", None)
        text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
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
            ``{"export.opset": 18, "benchmark.batch_sizes": [1, 32]}``. A pass is addressed by
            its index (``passes.2.search_budget_s``) or by its type
            (``passes.quantize-dynamic.search_budget_s``: every pass of that type);
            ``benchmark.threads`` (deprecated) sets ``runtime.threads``.

    Raises:
        RecipeError: unknown name, unreadable file, invalid YAML, unknown key/pass, wrong type, no
            accuracy gate (``validation.gates`` empty), an override naming a pass type the recipe
            lacks, ``benchmark.threads`` and ``runtime.threads`` set to different values; the
            message names the file and line and the valid choices.
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


def load_yaml_mapping(
    text: str, where: str, error: type[OptkitError], what: str, hint: str
) -> tuple[dict[str, Any], Any]:
    """Parse YAML ``text`` that must be a mapping: the data and its node tree (for the line numbers
    of :func:`describe_validation_error`). Shared by recipes and batch plans.

    Raises:
        error: invalid YAML (``where line N: invalid YAML: ...``), or not a mapping (``where: what, got T``).
    """
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{where}{line}: invalid YAML: {problem}", "fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise error(f"{where}: {what}, got {type(data).__name__}", hint)
    return data, node


def parse_recipe(text: str, where: str = "<recipe>", overrides: dict[str, Any] | None = None) -> Recipe:
    """Parse and validate recipe YAML ``text``; ``where`` names it in errors. See :func:`load_recipe`."""
    data, node = load_yaml_mapping(
        text, where, RecipeError, "a recipe must be a YAML mapping", "start from `optkit recipes show fp32`"
    )
    _move_legacy_threads(data, where)
    set_keys = []
    for key, value in (overrides or {}).items():
        for target in _expand_pass_type(data, key, where):
            set_keys.append(LEGACY_KEYS.get(target, target))
            _set_dotted(data, set_keys[-1], value, where)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(_describe(exc, where, node, set_keys=set_keys), _hint(exc)) from exc
    if not recipe.validation.gates:
        raise RecipeError(
            f"{where}: validation.gates is empty: a recipe needs at least one accuracy gate, or "
            "nothing would check that the artifact computes what the source model computes",
            "keep the recipe's gates (change a threshold with --set validation.gates.0.min=...)",
        )
    if not any(g.metric in FIDELITY_METRICS for g in recipe.validation.gates):
        metrics = ", ".join(g.metric for g in recipe.validation.gates)
        raise RecipeError(
            f"{where}: validation.gates ({metrics}) has no gate that compares the artifact with the "
            "source model, so nothing would check that the artifact computes what the source computes",
            f"add one of {', '.join(sorted(FIDELITY_METRICS))}",
        )
    return recipe


def apply_overrides(recipe: Recipe, overrides: dict[str, Any]) -> Recipe:
    """A copy of ``recipe`` with dotted ``overrides`` applied and validated again (RecipeError)."""
    return parse_recipe(yaml.safe_dump(recipe.model_dump(mode="json")), f"recipe '{recipe.name}'", overrides)


#: deprecated override keys → where they now live (``--set benchmark.threads=4`` keeps working)
LEGACY_KEYS = {"benchmark.threads": "runtime.threads"}


def _move_legacy_threads(data: dict, where: str) -> None:
    """Move a recipe file's ``benchmark.threads`` (deprecated) to ``runtime.threads``, before the
    overrides are applied (so that ``--threads`` wins over either spelling).

    A value that is not a positive integer stays where it is, for validation to name it there.

    Raises:
        RecipeError: the file sets both, to different values.
    """
    bench, runtime = data.get("benchmark"), data.get("runtime")
    if not isinstance(bench, dict) or "threads" not in bench or not isinstance(runtime, (dict, type(None))):
        return
    legacy = bench["threads"]
    if isinstance(legacy, bool) or not isinstance(legacy, int) or legacy < 1:
        return
    runtime = runtime if runtime is not None else {}
    if "threads" in runtime and runtime["threads"] != legacy:
        raise RecipeError(
            f"{where}: benchmark.threads ({legacy}) and runtime.threads ({runtime['threads']}) differ",
            "benchmark.threads is a deprecated alias of runtime.threads: set runtime.threads only",
        )
    del bench["threads"]
    runtime.setdefault("threads", legacy)
    data["runtime"] = runtime


def _expand_pass_type(data: dict, key: str, where: str) -> list[str]:
    """``passes.<pass type>.<field>`` → ``passes.<i>.<field>`` for every pass ``i`` of that type in
    ``data`` (the raw recipe mapping); any other key is returned as it is.

    Raises:
        RecipeError: the pass type is unknown, or the recipe has no pass of that type; the message
            names the pass types the recipe has.
    """
    parts = key.split(".")
    if len(parts) < 2 or parts[0] != "passes" or parts[1].isdigit():
        return [key]
    passes = data.get("passes")
    passes = passes if isinstance(passes, list) else []
    types = [p.get("type") if isinstance(p, dict) else None for p in passes]
    indices = [i for i, kind in enumerate(types) if kind == parts[1]]
    if not indices:
        has = ", ".join(str(kind) for kind in types) or "none"
        problem = (
            f"{where} has no '{parts[1]}' pass"
            if parts[1] in PASS_TYPES
            else f"unknown pass type '{parts[1]}' (valid: {', '.join(PASS_TYPES)}); {where}"
        )
        raise RecipeError(
            f"override '{key}': {problem} (its passes: {has})",
            "address a pass by one of the recipe's pass types or by its index, e.g. passes.0.<field>",
        )
    rest = ".".join(parts[2:])
    return [f"passes.{i}" + (f".{rest}" if rest else "") for i in indices]


def pass_override_keys(recipe: Recipe, overrides: dict[str, Any]) -> set[str]:
    """The keys of ``overrides`` with every ``passes.<pass type>.…`` key written as the
    ``passes.<index>.…`` keys it sets in ``recipe`` (to tell which fields a ``--set`` already
    names). Raises RecipeError like :func:`load_recipe` for a pass type the recipe lacks."""
    data = {"passes": [{"type": p.type} for p in recipe.passes]}
    where = f"recipe '{recipe.name}'"
    return {LEGACY_KEYS.get(k, k) for key in overrides for k in _expand_pass_type(data, key, where)}


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
            raise RecipeError(
                f"override '{key}': '{part}' is not a section or list index in {where}",
                "override keys look like validation.max_samples, passes.1.per_channel or passes.fuse.num_heads",
            )
    last = parts[-1]
    if isinstance(target, list):
        if not (last.isdigit() and int(last) < len(target)):
            raise RecipeError(f"override '{key}': no item {last} in {where}", "list indices start at 0")
        target[int(last)] = value
    else:
        target[last] = value


def searches(config: Any) -> bool:
    """True for a pass that runs a time-bounded search (``search_budget_s`` applies): a
    ``quantize-dynamic`` pass with ``search: accuracy-aware``, a ``quantize-static`` pass with
    ``search: true``, or an ``fp16`` pass with ``auto_block``."""
    return (
        (config.type == "quantize-dynamic" and config.search == "accuracy-aware")
        or (config.type == "quantize-static" and config.search is True)
        or (config.type == "fp16" and config.auto_block)
    )


def flag_overrides(
    recipe: Recipe, flag: str, key: str, value: Any, applies: Callable[[Any], bool], needs: str
) -> dict[str, Any]:
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
        raise UsageError(
            f"{flag} has no effect: recipe '{recipe.name}' has no {needs} (its passes: {passes})",
            f"drop {flag}, or choose a recipe with {needs}",
        )
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


def _fields_at(loc: tuple, root: Any = None) -> list[str] | None:
    """Valid keys of the model that owns the last element of ``loc`` (None if unknown); ``root`` is
    the validated model class (default :class:`Recipe`)."""
    model: Any = root or Recipe
    for part in loc[:-1]:
        if part in PASS_CONFIGS:
            model = PASS_CONFIGS[part]
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


def describe_validation_error(exc: ValidationError, where: str, node: Any, root: Any = None) -> str:
    """One ``; ``-joined line naming each problem of ``exc`` as ``<where> line N: <dotted key>: <problem>``
    (an unknown key lists the valid keys), for YAML validated as pydantic model ``root`` (default
    :class:`Recipe`); ``node`` is the composed YAML (``yaml.compose``), for the line numbers."""
    return _describe(exc, where, node, root)


def _describe(exc: ValidationError, where: str, node: Any, root: Any = None, set_keys: Sequence[str] = ()) -> str:
    """See :func:`describe_validation_error`; a problem at or under a ``--set`` key (``set_keys``,
    dotted) is placed at that ``--set``, not at a line of the YAML it never came from."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = _line_of(node, loc)
        dotted = ".".join(str(p) for p in loc if p not in PASS_TYPES) or "<top>"
        given = any(dotted == k or dotted.startswith(k + ".") for k in set_keys)
        at = f"{where} line {line}" if line else where
        if err["type"] == "extra_forbidden":
            valid = _fields_at(loc, root)
            msg = f"unknown key '{loc[-1]}'" + (f" (valid: {', '.join(valid)})" if valid else "")
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown pass type {err['input']!r} (valid: {', '.join(PASS_TYPES)})"
        elif err["type"] == "union_tag_not_found":
            msg = f"a pass needs a 'type' (valid: {', '.join(PASS_TYPES)})"
        elif err["type"] == "literal_error":
            msg = f"invalid value {err['input']!r} ({err['msg'].replace('Input should be', 'expected')})"
        else:
            msg = err["msg"]
        problems.append(f"--set {dotted}: {msg}" if given else f"{at}: {dotted}: {msg}")
    return "; ".join(problems)


def _hint(exc: ValidationError) -> str:
    return "see `optkit recipes show fp32` for a complete recipe, or docs/recipes.md"
