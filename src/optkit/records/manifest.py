"""``manifest.json`` as typed records: :class:`Manifest` and one model per section.

The models serialise to exactly the keys (in the same order) that earlier optkit versions wrote
from plain dicts, so ``optkit verify``, the attestation and the signature read old and new artifacts
alike. JSON holds no NaN or infinity: pydantic writes them as ``null``, so figures that can be
non-finite are typed ``float | None`` (None on reading such a file back).

``optkit manifest schema`` prints :meth:`Manifest.model_json_schema`. Built by
:func:`optkit.artifact.manifest.build_manifest`; sealed and checked by :mod:`optkit.artifact.manifest`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_serializer

from optkit.records.search import GateStatus, Record, SearchReport
from optkit.records.session import ServingConfig

SCHEMA_VERSION = 1

Evidence = Literal["real-data", "random-inputs"]
"""What the artifact was validated on: real data, or generated random inputs (--strict rejects them)."""


class FileEntry(BaseModel):
    """One file of the artifact: sha256 (hex) and size in bytes."""

    sha256: str
    bytes: int


class RecipeRecord(Record):
    """The recipe: its name, the sha256 of its resolved form, and that form (as JSON: an older
    optkit's recipe need not validate as today's :class:`~optkit.recipe.Recipe`)."""

    name: str
    sha256: str
    resolved: dict[str, JsonValue]


class SourceRecord(Record):
    """The source model: the path given, registry framework, on-disk kind (``torchscript``,
    ``keras``, ...), sha256 (the framework's hasher), task, and the framework package versions."""

    path: str
    framework: str
    kind: str
    sha256: str
    task: str | None
    versions: dict[str, str]


class ArtifactRecord(Record):
    """The emitted ONNX model: ``{domain: opset}``, the execution provider it was validated on,
    optkit's version, the ONNX IR version and its node count."""

    opset: dict[str, int]
    execution_provider: str
    optkit_version: str
    ir_version: int
    nodes: int


class CpuRecord(Record):
    """The CPU: model name, logical cores, and the int8/fp16-relevant flags (``{flag: present}``)."""

    model: str
    logical_cores: int | None
    flags: dict[str, bool]


class HostRecord(Record):
    """The machine that measured every figure: its host name, the ONNX Runtime execution providers
    it offers, and the Ray node id when the run was a Ray task (``optkit batch --ray``), else None."""

    hostname: str
    ort_providers: list[str]
    ray_node_id: str | None = None


class EnvironmentRecord(Record):
    """Python version, platform string, ``{package: version}``, the CPU and the host (None in
    manifests written before the host was recorded)."""

    python: str
    platform: str
    packages: dict[str, str]
    cpu: CpuRecord
    host: HostRecord | None = None


class DataRecord(Record):
    """The validation data: ``kind`` (``conll``, ``text``, ``npz``, ``random``), origin (path or how
    inputs were generated), sha256 of the file (None when generated), samples, whether it is real,
    and words dropped by truncation."""

    kind: str
    origin: str
    sha256: str | None
    samples: int
    real: bool
    truncated_words: int


class StepDetails(BaseModel):
    """A step's figures (any JSON, e.g. ``fusions``, ``quantized_ops``), plus the search report of a
    searching pass, written last under ``search``."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)

    search: SearchReport | None = None

    @model_serializer(mode="wrap")
    def _search_last(self, handler: Any) -> Any:
        data = handler(self)
        search = data.pop("search", None)
        if search is not None:
            data["search"] = search
        return data

    @property
    def figures(self) -> dict[str, JsonValue]:
        """The step's figures, without the search report."""
        return dict(self.__pydantic_extra__ or {})


class StepEntry(Record):
    """One pipeline step: name, wall time (s), details, warnings, and why it was skipped (or None)."""

    name: str
    seconds: float
    details: StepDetails
    warnings: list[str]
    skipped: str | None


class ErrorHistogram(Record):
    """Counts of |artifact − source| per element in fixed bins: ``counts[i]`` values fell in
    ``[edges[i], edges[i+1])`` (see :data:`~optkit.validation.accuracy.ERROR_BIN_EDGES`)."""

    edges: list[float]
    counts: list[int]


class TagFlip(Record):
    """Token classification: how many real tokens' predicted tag went from ``source`` to ``artifact``."""

    source: str
    artifact: str
    count: int


class EntityScore(Record):
    """NER, one entity type: source and artifact F1 (0–100 points) against gold, and gold support."""

    source: float
    artifact: float
    support: int


class OutputRecord(Record):
    """Accuracy figures of one output tensor (see :class:`~optkit.validation.accuracy.OutputComparison`)."""

    name: str
    shape: list[int]
    max_abs_error: float | None
    mean_abs_error: float | None
    max_rel_error: float | None
    cosine_min: float | None
    cosine_mean: float | None
    argmax_agreement: float | None
    nonfinite: int
    error_histogram: ErrorHistogram | None = None


class Disagreement(Record):
    """A sample whose label differs between source and artifact (tabular classifiers)."""

    sample: int
    source: str | int | float | bool | None
    artifact: str | int | float | bool | None
    max_probability_diff: float | None


class AccuracyRecord(Record):
    """Every accuracy figure (see :class:`~optkit.validation.accuracy.AccuracyReport`)."""

    metrics: dict[str, float | None]
    unavailable: dict[str, str]
    outputs: list[OutputRecord]
    samples: int
    disagreements: list[Disagreement]
    tag_flips: list[TagFlip] = []
    entity_f1: dict[str, EntityScore] = {}


class LatencyRecord(Record):
    """Latency of one runner at one shape (ms; throughput in samples/s); ``p99_ms`` None in
    manifests written before it was measured."""

    p50_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    throughput: float | None
    iterations: int
    p99_ms: float | None = None


class EstimateRecord(Record):
    """A speed-up with its confidence interval over rounds (see
    :class:`~optkit.validation.stats.RatioEstimate`)."""

    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    rounds: int
    resamples: int
    method: str


class VerdictRecord(Record):
    """A speed gate's threshold at a shape and the verdict its interval gives."""

    threshold: float
    verdict: Literal["passed", "failed", "inconclusive"]


class NoiseSection(Record):
    """The machine's state around one timed shape (see :class:`~optkit.validation.noise.NoiseRecord`):
    load averages, other processes' CPU use (cores), CPU clock (MHz), per-runner round-to-round CV,
    the timing window (s) and the busy-machine warnings."""

    load_before: float | None = None
    load_after: float | None = None
    others_cores: float | None = None
    cpu_freq_mhz: float | None = None
    cpu_freq_max_mhz: float | None = None
    cv_source: float | None = 0.0
    cv_artifact: float | None = 0.0
    window_s: float = 0.0
    warnings: list[str] = []
    round_others_cores: list[float | None] = []
    spare_cores: float = 0.0
    contended_rounds: list[int] = []


#: how a contended shape's interval is marked in the terminal and the reports: fewer than
#: MIN_ROUNDS of its rounds were free of other processes' load, so its figure decides nothing
CONTENDED_MARK = "inconclusive: timed on a busy machine"


class ShapeRecord(Record):
    """Source vs artifact at one (device, batch size, sequence length): latency over every call,
    each round's p50 (ms), the speed-up's interval, each gate's verdict and the machine's noise."""

    device: str
    batch_size: int
    sequence_length: int | None
    source: LatencyRecord
    artifact: LatencyRecord
    source_round_ms: list[float] = []
    artifact_round_ms: list[float] = []
    estimate: EstimateRecord | None = None
    verdicts: list[VerdictRecord] = []
    noise: NoiseSection | None = None
    contended: bool = False


class RealLengthRecord(Record):
    """Source vs artifact over the real validation batches at one batch size, each batch padded to
    its own longest example (see :class:`~optkit.validation.workloads.RealLengthResult`):
    throughput in samples/s, each round's pass time in s, the throughput ratio's interval."""

    device: str
    batch_size: int
    padding: Literal["fixed", "per-batch"]
    batches: int
    samples: int
    mean_length: float | None
    source_throughput: float | None
    artifact_throughput: float | None
    source_round_s: list[float] = []
    artifact_round_s: list[float] = []
    estimate: EstimateRecord | None = None
    noise: NoiseSection | None = None


class ScanPointRecord(Record):
    """The artifact at one batch size of the scan."""

    batch_size: int
    latency: LatencyRecord


class BatchScanRecord(Record):
    """The artifact's throughput against the batch size (see
    :class:`~optkit.validation.workloads.BatchScan`)."""

    device: str
    sequence_length: int | None
    max_batch: int
    points: list[ScanPointRecord] = []
    best_batch_size: int = 0
    stopped: str = ""


class PeakMemoryRecord(Record):
    """One runner's own process at its peak resident set, MB (10^6 bytes) (see
    :class:`~optkit.validation.peak_memory.PeakMemory`)."""

    peak_mb: float | None
    baseline_mb: float | None = None
    scope: str = ""
    method: str = ""
    error: str = ""


class SpeedRecord(Record):
    """Every speed figure (see :class:`~optkit.validation.speed.SpeedReport`): seconds, MB (10^6 bytes)."""

    threads: int
    warmup: int
    iterations: int
    shapes: list[ShapeRecord]
    load_seconds: dict[str, float]
    rss_growth_mb: dict[str, float]
    size_mb: dict[str, float]
    skipped_devices: dict[str, str]
    rounds: int = 0
    max_rounds: int = 0
    budget_s: float = 0.0
    warnings: list[str] = []
    peak_memory: dict[str, PeakMemoryRecord] = {}
    real_length: list[RealLengthRecord] = []
    batch_scan: BatchScanRecord | None = None
    workload_seconds: dict[str, float] = {}  # wall seconds of each real-workload part


class GateRecord(Record):
    """One gate's verdict (see :class:`~optkit.validation.gates.GateResult`)."""

    name: str
    kind: Literal["accuracy", "speed", "compute"]
    metric: str
    op: Literal[">=", "<="]
    threshold: float
    value: float | None
    status: GateStatus
    reason: str = ""
    ci_low: float | None = None
    ci_high: float | None = None


class SearchSummary(Record):
    """The manifest's top-level line for one search (the full table is in the step's details):
    step name, strategy, candidates tried (without the fp32 input), the chosen id and its settings,
    whether it met the gates, the nodes kept in float32, and the search's wall time (s)."""

    step: str
    strategy: Literal["accuracy-aware"]
    candidates: int
    chosen: int
    settings: str
    met_gates: bool
    fp32_nodes: list[str]
    elapsed_s: float


def _unset(value: object) -> bool:
    return value is None


class SandboxSection(BaseModel):
    """How the source model was confined: ``status`` last, after the worker's confinement
    (Landlock ABI, filesystem rules, network, scopes, paths, private /dev/shm, socket filter; see
    :class:`~optkit.sandbox.landlock.Confinement`) or the ``reason`` it ran unconfined. Fields the
    worker did not report are left out of the JSON; keys a newer worker adds are kept."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)

    reason: str | None = Field(None, exclude_if=_unset)
    abi: int | None = Field(None, exclude_if=_unset)
    filesystem: bool | None = Field(None, exclude_if=_unset)
    network: str | None = Field(None, exclude_if=_unset)
    scopes: list[str] | None = Field(None, exclude_if=_unset)
    read_only: list[str] | None = Field(None, exclude_if=_unset)
    writable: list[str] | None = Field(None, exclude_if=_unset)
    private_shm: bool | None = Field(None, exclude_if=_unset)
    sockets: str | None = Field(None, exclude_if=_unset)
    status: Literal["confined", "unavailable", "off"]

    @model_serializer(mode="wrap")
    def _status_last(self, handler: Any) -> Any:
        data = handler(self)
        data["status"] = data.pop("status")
        return data


class Manifest(BaseModel):
    """The artifact manifest (``manifest.json``)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    approved: bool
    strict: bool
    recipe: RecipeRecord
    source: SourceRecord
    artifact: ArtifactRecord
    files: dict[str, FileEntry]
    environment: EnvironmentRecord
    data: DataRecord
    steps: list[StepEntry]
    accuracy: AccuracyRecord
    speed: SpeedRecord | None
    gates: list[GateRecord]
    warnings: list[str]
    search: list[SearchSummary] = []
    #: ``"real-data"`` or ``"random-inputs"`` (validated on generated inputs: --strict rejects it)
    evidence: Evidence = "real-data"
    #: how the source model was confined (None in artifacts made before the sandbox existed, which
    #: wrote ``{}``)
    sandbox: SandboxSection | None = None
    #: the ONNX Runtime session settings the artifact is served with (the ``tune-session`` pass;
    #: the same record as ``session.json``); left out of the JSON when the pass did not run
    serving: ServingConfig | None = Field(None, exclude_if=_unset)
    digest: str = ""

    @field_validator("sandbox", mode="before")
    @classmethod
    def _unrecorded_sandbox(cls, value: object) -> object:
        return None if value == {} else value


__all__ = [
    "SCHEMA_VERSION",
    "AccuracyRecord",
    "ArtifactRecord",
    "CpuRecord",
    "DataRecord",
    "Disagreement",
    "EntityScore",
    "EnvironmentRecord",
    "ErrorHistogram",
    "Evidence",
    "FileEntry",
    "GateRecord",
    "LatencyRecord",
    "Manifest",
    "OutputRecord",
    "RecipeRecord",
    "SandboxSection",
    "SearchSummary",
    "ShapeRecord",
    "SourceRecord",
    "SpeedRecord",
    "StepDetails",
    "StepEntry",
    "TagFlip",
]
