"""The side-by-side int8 table and the Done-when checks of issue 13 (items 4 and the Done-when
bullets for the two transformer models), from measured figures. Pure: no model, no timing, so that
``tests/unit/benchmarks/test_int8_peers.py`` checks it on synthetic figures.

Figures (see ``benchmarks/int8_peers.py`` for how each is measured):

* accuracy: ``pooled_cosine_mean`` / ``pooled_cosine_min`` (MiniLM), ``tag_agreement`` /
  ``entity_f1_drop`` in F1 points (NER), vs PyTorch, as optkit's metrics compute them;
* speed-ups vs PyTorch (PyTorch p50 / artifact p50 at a fixed shape, or artifact / PyTorch
  throughput over the real batches), each a :class:`Ratio` with its 95 % interval;
* ``vs_reference``: the optkit artifact against the per-tensor full-int8 model timed head to head
  (reference p50 / optkit p50; optkit throughput / reference throughput): the Done-when's
  "≥ 0.95 × that of the per-tensor full-int8 model".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: the shapes and the workload of the table, in column order
SPEED_KEYS = ("1x128", "8x128", "real")
#: Done-when: optkit's speed at least this fraction of the per-tensor full-int8 model's
SPEED_FRACTION = 0.95
#: Done-when: MiniLM's pooled cosine minimum and NER's tag agreement (the strict gate)
COSINE_MIN = 0.99
TAG_AGREEMENT_MIN = 0.997


@dataclass(frozen=True)
class Ratio:
    """A ratio (×) with its 95 % interval (``low``/``high`` None: fewer than 3 rounds)."""

    ratio: float
    low: float | None = None
    high: float | None = None

    def cell(self) -> str:
        """``1.88× [1.80, 1.95]``, or ``1.88×`` without an interval."""
        if self.low is None or self.high is None:
            return f"{self.ratio:.2f}×"
        return f"{self.ratio:.2f}× [{self.low:.2f}, {self.high:.2f}]"


@dataclass
class Row:
    """One artifact of one model.

    Attributes:
        model: ``minilm`` or ``ner``.
        key: ``pytorch``, ``optkit``, ``fp32``, ``per-tensor``, ``olive``, ``optimum-avx2``.
        label: the row's label.
        metrics: accuracy vs PyTorch (see the module docstring); empty for PyTorch itself.
        fp32_nodes: nodes optkit's search kept in float32 (from the manifest); None for others.
        float_weight_ops: MatMul / Gemm / Attention / EmbedLayerNormalization / Conv nodes whose
            weight is still float in the model file (fp32 fallback nodes *and* op types left out of
            quantization); None = not read.
        attention_ops: Attention / QAttention / MultiHeadAttention nodes in the model (fusion check).
        size_mb: the model file(s), MB (10^6 bytes).
        settings: the int8 settings, one line.
        speedups: ``{SPEED_KEYS item: Ratio}`` vs PyTorch.
        p50_ms: ``{"1x128": (PyTorch ms, artifact ms), ...}`` at the fixed shapes.
        vs_reference: ``{"1x128" | "real": Ratio}``: optkit vs the per-tensor model, head to head.
        notes: deviations (a failed pre-processing, DefaultTensorType, a rejected conversion).
    """

    model: str
    key: str
    label: str
    metrics: dict[str, float] = field(default_factory=dict)
    fp32_nodes: int | None = None
    float_weight_ops: int | None = None
    attention_ops: int | None = None
    size_mb: float | None = None
    settings: str = ""
    speedups: dict[str, Ratio] = field(default_factory=dict)
    p50_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    vs_reference: dict[str, Ratio] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def accuracy_cell(row: Row) -> str:
    """The accuracy column: MiniLM ``cosine mean 0.9967 / min 0.9940``, NER ``tag agreement 0.9983,
    F1 drop +0.16``; ``—`` without figures (PyTorch)."""
    m = row.metrics
    if "pooled_cosine_min" in m:
        return f"pooled cosine mean {m.get('pooled_cosine_mean', float('nan')):.4f} / min {m['pooled_cosine_min']:.4f}"
    if "tag_agreement" in m:
        drop = m.get("entity_f1_drop")
        return f"tag agreement {m['tag_agreement']:.4f}" + (f", F1 drop {drop:+.2f} pts" if drop is not None else "")
    return "—"


HEADER = [
    "model",
    "artifact",
    "accuracy vs PyTorch",
    "fp32 fallback nodes",
    "attention ops",
    "MB",
    "speed-up 1×128",
    "speed-up 8×128",
    "real-length throughput",
    "p50 1×128 ms (PyTorch / artifact)",
    "int8 settings",
]


def table_rows(rows: list[Row]) -> list[list[str]]:
    """One list of cells per row, in :data:`HEADER` order."""
    cells = []
    for row in rows:
        p50 = row.p50_ms.get("1x128")
        cells.append(
            [
                row.model,
                row.label,
                accuracy_cell(row),
                _float_cell(row),
                "—" if row.attention_ops is None else str(row.attention_ops),
                "—" if row.size_mb is None else f"{row.size_mb:.1f}",
                *(row.speedups[k].cell() if k in row.speedups else "—" for k in SPEED_KEYS),
                f"{p50[0]:.1f} / {p50[1]:.1f}" if p50 else "—",
                row.settings or "—",
            ]
        )
    return cells


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (``|`` in a cell escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Check:
    """One Done-when line: ``passed`` and what was compared."""

    passed: bool
    text: str

    def line(self) -> str:
        """``PASS: ...`` or ``FAIL: ...``."""
        return f"{'PASS' if self.passed else 'FAIL'}: {self.text}"


def relative(optkit: Row, reference: Row | None, key: str) -> Ratio | None:
    """optkit's speed as a fraction of the per-tensor model's at ``key`` (``1x128`` or ``real``):
    the head-to-head figure when it was timed, else the ratio of the two speed-ups vs PyTorch (no
    interval); None when neither is there."""
    if key in optkit.vs_reference:
        return optkit.vs_reference[key]
    if reference is None or key not in optkit.speedups or key not in reference.speedups:
        return None
    return Ratio(optkit.speedups[key].ratio / reference.speedups[key].ratio)


def _speed_checks(model: str, optkit: Row, reference: Row | None) -> list[Check]:
    checks = []
    for key, what in (("1x128", "speed-up at 1×128"), ("real", "real-length throughput")):
        rel = relative(optkit, reference, key)
        if rel is None:
            checks.append(Check(False, f"{model}: {what}: not measured against the per-tensor full-int8 model"))
            continue
        checks.append(
            Check(
                rel.ratio >= SPEED_FRACTION,
                f"{model}: {what} = {rel.cell()} of the per-tensor full-int8 model's (need ≥ {SPEED_FRACTION})",
            )
        )
    return checks


def _float_cell(row: Row) -> str:
    """``fp32 nodes`` (from the manifest) and, when read, the float-weight ops in the file, e.g.
    ``0 (24 float-weight ops)``."""
    nodes = "—" if row.fp32_nodes is None else str(row.fp32_nodes)
    return nodes if row.float_weight_ops is None else f"{nodes} ({row.float_weight_ops} float-weight ops)"


def _fallback_check(model: str, optkit: Row) -> Check:
    """No fp32 fallback: no node kept in float32 and no op type left out of quantization (a
    search that quantizes only Attention leaves every FFN MatMul in float32 with 0 fallback nodes)."""
    if optkit.fp32_nodes is None:
        return Check(False, f"{model}: fp32 fallback nodes unknown (no manifest)")
    if optkit.float_weight_ops:
        return Check(
            False,
            f"{model}: {optkit.fp32_nodes} fp32 fallback node(s), but {optkit.float_weight_ops} op(s) with "
            "float weights left in the model (need a fully quantized model)",
        )
    return Check(optkit.fp32_nodes == 0, f"{model}: {optkit.fp32_nodes} fp32 fallback node(s) (need 0)")


def _metric_check(model: str, optkit: Row, metric: str, minimum: float) -> Check:
    value = optkit.metrics.get(metric)
    if value is None or value != value:
        return Check(False, f"{model}: {metric} not measured")
    return Check(value >= minimum, f"{model}: {metric} = {value:.4f} (need ≥ {minimum})")


def done_when(rows: list[Row]) -> list[Check]:
    """Issue 13's Done-when bullets for the transformer models present in ``rows``.

    * MiniLM: ``pooled_cosine_min`` ≥ :data:`COSINE_MIN` with 0 fp32 fallback nodes, and the speed-up
      at 1×128 and the real-length throughput each ≥ :data:`SPEED_FRACTION` × the per-tensor
      full-int8 model's.
    * NER: ``tag_agreement`` ≥ :data:`TAG_AGREEMENT_MIN` with 0 fallback nodes, at ≥
      :data:`SPEED_FRACTION` × the per-tensor full-int8 model's speed (1×128 and real lengths).

    A model whose optkit row is missing (the conversion was rejected: nothing to time) fails.
    """
    checks = []
    for model, metric, minimum in (
        ("minilm", "pooled_cosine_min", COSINE_MIN),
        ("ner", "tag_agreement", TAG_AGREEMENT_MIN),
    ):
        own = [r for r in rows if r.model == model]
        if not own:
            continue
        optkit = next((r for r in own if r.key == "optkit"), None)
        if optkit is None:
            checks.append(Check(False, f"{model}: no optkit artifact (conversion rejected or not run)"))
            continue
        reference = next((r for r in own if r.key == "per-tensor"), None)
        checks.append(_metric_check(model, optkit, metric, minimum))
        checks.append(_fallback_check(model, optkit))
        checks += _speed_checks(model, optkit, reference)
    return checks


def to_json(rows: list[Row], checks: list[Check], context: dict) -> dict:
    """Everything as JSON-ready data: ``{"context", "rows", "done_when"}``."""
    return {
        "context": context,
        "rows": [asdict(r) for r in rows],
        "done_when": [{"passed": c.passed, "text": c.text} for c in checks],
    }
