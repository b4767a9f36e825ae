"""The record of an accuracy-aware int8 search: :class:`SearchReport` and its :class:`Candidate` rows.

Built once by :mod:`optkit.search.int8_search` or :mod:`optkit.search.static_search`, carried in
``PassOutcome.search`` / ``StepRecord.search``, rendered by the report and the CLI, and written into ``manifest.json``
(under the step's ``details.search``) by serialising this model; its JSON keys are those the
manifest has always had.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Stage = Literal["fp32 input", "settings", "smoothed", "static", "op types", "node probe", "fp32 fallback"]
"""Which stage of the search tried a candidate (see :mod:`optkit.search.int8_search`)."""

Verdict = Literal["chosen", "passed", "failed", "error", "reference"]
"""A candidate's outcome: ``reference`` is the fp32 input, ``error`` could not be built or run."""

GateStatus = Literal["passed", "failed", "skipped", "inconclusive"]
"""A gate's verdict (the same three as :class:`~optkit.validation.gates.GateResult`)."""


class Record(BaseModel):
    """Base of the JSON records: unknown keys are an error (a typo, or a file from elsewhere)."""

    model_config = ConfigDict(extra="forbid")


class CandidateGate(Record):
    """One accuracy gate evaluated on a candidate: ``value`` is None when skipped (or NaN/inf,
    which JSON cannot hold)."""

    name: str
    value: float | None
    status: GateStatus


class SpeedupInterval(Record):
    """A passing candidate's speed-up over the search's reference (its fp32 input) from the
    ranking's alternating rounds (:mod:`optkit.search.ranking`).

    Attributes:
        ratio: reference p50 / candidate p50 over every round (×; > 1 = faster than the fp32 input).
        ci_low / ci_high: the 95 % bootstrap interval over rounds (×).
        rounds: rounds timed; p50_ms: the candidate's pooled median call (ms) in those rounds.
        near_tie: timing could not tell it from the fastest (overlapping intervals or within the
            latency tolerance), so accuracy, then search order, decided between them.
    """

    ratio: float
    ci_low: float
    ci_high: float
    rounds: int
    p50_ms: float
    near_tie: bool


class Ranking(Record):
    """How the passing candidates were ranked (see :mod:`optkit.search.ranking`).

    Attributes:
        reference: id of the candidate every speed-up is relative to (0, the fp32 input).
        rounds / calls_per_block: the timing protocol: alternating rounds, one block each per round.
        fastest: id with the largest speed-up; tied: ids in a near-tie with it (fastest included).
        timed: ids timed (the passing candidates, at most the fastest few by their scoring call).
        rule: the rule in words, for the report.
    """

    reference: int
    rounds: int
    calls_per_block: int
    fastest: int
    tied: list[int]
    timed: list[int]
    rule: str


class Candidate(Record):
    """One row of the search table.

    Attributes:
        id: position in search order (0 = the fp32 input, for reference).
        stage: the stage that tried it; settings: its settings in words (``qint8 per-channel``).
        weight_type / per_channel / reduce_range / op_types: the ``quantize_dynamic`` settings
            (None for the fp32 input; ``op_types`` None = ONNX Runtime's default list).
        fp32_nodes: nodes kept in float32; quantized_ops: ``{quantized op type: count}``.
        metrics: its accuracy metrics (None where NaN/inf); gates: the recipe's accuracy gates on it.
        passed: every accuracy gate held; margin: worst normalised gate margin (None when infinite).
        latency_ms / best_ms: p50 and fastest call at the gated shape (ms); size_mb: MB (10^6 bytes).
        seconds: wall time to build and score it (s, 2 decimals); error: why it failed to build/run.
        quantizer: ``dynamic`` (quantize_dynamic) or ``static`` (quantize_static, QDQ); for static:
            calibrate_method (``minmax``/``percentile``/``entropy``) and calibration (which samples).
        smooth_alpha: the SmoothQuant alpha the model was smoothed with first (stage ``smoothed``);
            ``"per-layer"`` when each layer's alpha was chosen by its int8 output error
            (:mod:`optkit.search.smooth_alpha`; the choice is in the step details).
        smooth_mode: how it was smoothed: ``fold`` (into LayerNorm / Attention V only) or ``mul``
            (also through inserted Muls, :mod:`optkit.search.smoothquant`); None = not smoothed.
        speedup: its speed-up over the fp32 input with a 95 % interval, for the passing candidates
            the ranking timed (None otherwise).
        activations: a static candidate's activation encoding (``asymmetric`` quint8 or
            ``symmetric`` qint8) when the static search chose it; None = not recorded.
        family: the candidate's family in words (:meth:`~optkit.search.candidates.CandidateRun.family`),
            e.g. ``dynamic``, ``dynamic+smooth α=0.5``, ``static minmax+smooth α=0.5``,
            ``dynamic, op subset``, ``dynamic, fp32 fallback``; None in a report from before families.
    """

    id: int
    stage: Stage
    settings: str
    weight_type: str | None
    per_channel: bool | None
    reduce_range: bool | None
    op_types: list[str] | None
    fp32_nodes: list[str]
    quantized_ops: dict[str, int]
    metrics: dict[str, float | None]
    gates: list[CandidateGate]
    passed: bool
    margin: float | None
    latency_ms: float | None
    best_ms: float | None = None
    size_mb: float | None
    seconds: float
    error: str | None
    verdict: Verdict
    quantizer: Literal["dynamic", "static"] | None = None
    calibrate_method: str | None = None
    calibration: str | None = None
    smooth_alpha: float | Literal["per-layer"] | None = None
    smooth_mode: Literal["fold", "mul"] | None = None
    speedup: SpeedupInterval | None = None
    activations: Literal["asymmetric", "symmetric"] | None = None
    family: str | None = None


class NodeSensitivityRecord(Record):
    """One node of the int8 sensitivity ranking.

    Attributes:
        node / op_type: the node.
        error: its local sensitivity, a relative Frobenius error (:mod:`optkit.search.sensitivity`).
        method: ``output`` (product on real activations) or ``weight`` (weight only).
        probe: id of the ``node probe`` candidate that kept this node alone in float32 (None: not
            probed, :attr:`~optkit.pass_configs.quantize_dynamic.Int8SearchSpace.fallback_probes`).
        margin: that candidate's worst normalised gate margin on the recipe's own gates (None: not
            probed, or infinite).
        gain: ``margin`` minus the fallback base's worst margin: the measured effect of keeping
            this node in float32 (> 0: the gates moved towards passing).
    """

    node: str
    op_type: str
    error: float | None
    method: Literal["output", "weight"]
    probe: int | None = None
    margin: float | None = None
    gain: float | None = None


class SearchReport(Record):
    """Everything one accuracy-aware search tried and chose.

    Attributes:
        strategy: ``accuracy-aware`` (the only search so far).
        candidates: every candidate in search order, the fp32 input first.
        chosen: the chosen candidate's ``id``; met_gates: it met every accuracy gate.
        fp32_nodes: nodes the chosen candidate keeps in float32.
        budget_s / budget_exhausted / elapsed_s: the time budget, whether it ran out, time spent (s).
        latency_shape: the input shape candidates were timed at, e.g. ``1×128``.
        sensitivity: the 30 most sensitive nodes, when the node fallback ranked them.
        ranking: how the passing candidates were timed and ranked (None when none was timed: no
            passing int8 candidate).
        fallback_base: id of the fully quantized candidate the fp32 fallback started from (None:
            no fallback ran); fallback_order: the order in which its nodes are kept in float32
            (the probed nodes by measured gain, then the rest by local sensitivity; at most 30).
    """

    strategy: Literal["accuracy-aware"]
    candidates: list[Candidate]
    chosen: int
    met_gates: bool
    fp32_nodes: list[str]
    budget_s: float
    budget_exhausted: bool
    elapsed_s: float
    latency_shape: str
    sensitivity: list[NodeSensitivityRecord] = []
    ranking: Ranking | None = None
    fallback_base: int | None = None
    fallback_order: list[str] = []

    @property
    def chosen_candidate(self) -> Candidate:
        """The row whose ``id`` is :attr:`chosen`.

        Raises:
            ValueError: no such row (a hand-made report).
        """
        for candidate in self.candidates:
            if candidate.id == self.chosen:
                return candidate
        raise ValueError(f"search report has no candidate {self.chosen}")

    @property
    def tried(self) -> int:
        """Candidates tried, not counting the fp32 input."""
        return len(self.candidates) - 1


__all__ = [
    "Candidate",
    "CandidateGate",
    "GateStatus",
    "NodeSensitivityRecord",
    "Ranking",
    "SearchReport",
    "SpeedupInterval",
    "Stage",
    "Verdict",
]
