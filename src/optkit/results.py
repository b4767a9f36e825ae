"""What a conversion returns: :class:`ConvertResult` (verdict, figures, manifest) made of
:class:`StepRecord` entries, and what it reports while it runs: the :class:`Progress` protocol.

Its own module, below :mod:`optkit.pipeline` and :mod:`optkit.artifact`, so that the report
(:mod:`optkit.artifact.report`) and the CLI can read a result without importing the pipeline.
"""

from __future__ import annotations

import warnings as warnings_module
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from optkit.errors import GateFailed
from optkit.recipe import FIDELITY_METRICS, Recipe
from optkit.records.figures import Figure
from optkit.records.manifest import DataRecord, Evidence, Manifest, SandboxSection, SourceRecord
from optkit.records.search import SearchReport
from optkit.records.session import ServingConfig
from optkit.validation.accuracy import AccuracyReport
from optkit.validation.gates import GateResult
from optkit.validation.speed import ShapeResult, SpeedReport

Event = Callable[[str, Any], None]
"""Deprecated: the old progress callback ``(event, payload)``; pass a :class:`Progress` instead
(see :class:`EventProgress`). Kept for one release."""


@dataclass
class StepRecord:
    """One pipeline step (load, export, a pass, validation, benchmark) with its wall time (s).

    Attributes:
        name: the step, e.g. ``"export"``, ``"quantize-dynamic"``.
        seconds: its wall time (s).
        details: its figures, JSON values (see :class:`~optkit.pass_context.PassOutcome`).
        warnings / skipped: as the step returned them.
        search: a searching pass's report (the manifest writes it under ``details.search``).
    """

    name: str
    seconds: float
    details: dict[str, Figure] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None
    search: SearchReport | None = None


class Progress(Protocol):
    """What a conversion reports while it runs, one method per kind of event (the CLI prints each
    as a line; see :class:`optkit.cli.render.Progress`). Methods return nothing and should be quick;
    an exception raised by one ends the conversion."""

    def step_started(self, name: str) -> None:
        """A pipeline step (``"export"``, a pass, ``"validate accuracy"``, ...) starts."""

    def step_done(self, record: StepRecord) -> None:
        """A step finished: its wall time, details and warnings."""

    def shape_measured(self, shape: ShapeResult) -> None:
        """One benchmarked (device, batch, sequence length): source vs artifact latency."""

    def message(self, text: str) -> None:
        """A line from inside a step (a search candidate, an fp16 round)."""


class NullProgress:
    """A :class:`Progress` that ignores every event (the default)."""

    def step_started(self, name: str) -> None:
        """Ignore it."""

    def step_done(self, record: StepRecord) -> None:
        """Ignore it."""

    def shape_measured(self, shape: ShapeResult) -> None:
        """Ignore it."""

    def message(self, text: str) -> None:
        """Ignore it."""


class EventProgress:
    """Deprecated adapter: a :class:`Progress` that calls an old ``on_event(kind, payload)``
    callback with ``("step", name)``, ``("step_done", StepRecord)``, ``("shape", ShapeResult)`` and
    ``("progress", text)``, as before. Kept for one release; creating one warns
    (``DeprecationWarning``)."""

    def __init__(self, on_event: Event) -> None:
        warnings_module.warn(
            "on_event=(kind, payload) callbacks are deprecated: pass progress=, an optkit.results.Progress",
            DeprecationWarning,
            stacklevel=3,
        )
        self.on_event = on_event

    def step_started(self, name: str) -> None:
        """Call ``on_event("step", name)``."""
        self.on_event("step", name)

    def step_done(self, record: StepRecord) -> None:
        """Call ``on_event("step_done", record)``."""
        self.on_event("step_done", record)

    def shape_measured(self, shape: ShapeResult) -> None:
        """Call ``on_event("shape", shape)``."""
        self.on_event("shape", shape)

    def message(self, text: str) -> None:
        """Call ``on_event("progress", text)``."""
        self.on_event("progress", text)


@dataclass
class ConvertResult:
    """Everything a conversion measured and decided.

    Attributes:
        approved: True when every gate passed (and, with ``strict``, none was skipped).
        output_dir: the emitted artifact folder, or None when not approved.
        gates: every gate's verdict (all are evaluated).
        accuracy / speed: measured figures (speed is None if the run stopped before it).
        source / data: the source model and the validation data, as the manifest records them.
        manifest: the manifest (what ``manifest.json`` holds when approved, digest included; None
            until the conversion has finished).
        evidence: ``"real-data"`` or ``"random-inputs"`` (validated on generated inputs; ``strict``
            rejects it).
        sandbox: how the source model was confined (``status`` ``confined`` / ``unavailable`` /
            ``off``), or None when not recorded.
        serving: the ONNX Runtime session settings the artifact was validated and benchmarked with
            and is served with (``session.json``), when the recipe ran the ``tune-session`` pass.
    """

    approved: bool
    strict: bool
    recipe: Recipe
    source: SourceRecord
    data: DataRecord
    steps: list[StepRecord]
    accuracy: AccuracyReport
    speed: SpeedReport | None
    gates: list[GateResult]
    warnings: list[str]
    output_dir: Path | None = None
    manifest: Manifest | None = None
    evidence: Evidence = "real-data"
    sandbox: SandboxSection | None = None
    serving: ServingConfig | None = None

    @property
    def failed_gates(self) -> list[GateResult]:
        """Gates that did not pass: failed or inconclusive, plus skipped ones when ``strict``."""
        return [g for g in self.gates if g.blocks(self.strict)]

    @property
    def rejections(self) -> list[str]:
        """Why the run is not approved: each failed gate's name, and the missing evidence (no gate
        comparing the artifact with the source evaluated, see
        :data:`~optkit.recipe.FIDELITY_METRICS`; random inputs under ``strict``). Empty when approved."""
        reasons = [g.name for g in self.failed_gates]
        if not any(g.kind == "accuracy" and g.status != "skipped" and g.metric in FIDELITY_METRICS for g in self.gates):
            reasons.append(
                "no gate comparing the artifact with the source model was evaluated (every one was "
                "skipped, or none was in the recipe)"
            )
        if self.strict and self.evidence == "random-inputs":
            reasons.append("validated on generated random inputs (--strict needs real data: pass --data)")
        return reasons

    def raise_for_status(self) -> None:
        """Raise :class:`~optkit.errors.GateFailed` unless approved."""
        if not self.approved:
            raise GateFailed(f"not approved: {'; '.join(self.rejections)}", "see the report's gate table", result=self)

    def __repr__(self) -> str:
        """One readable line: verdict, recipe, source, gate counts (blocking ones named), folder."""
        counts: dict[str, int] = {}
        for gate in self.gates:
            counts[gate.status] = counts.get(gate.status, 0) + 1
        tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no gates"
        blocked = f"; blocking: {', '.join(g.name for g in self.failed_gates)}" if self.failed_gates else ""
        return (
            f"ConvertResult({'APPROVED' if self.approved else 'NOT APPROVED'}, recipe={self.recipe.name!r}, "
            f"source={self.source.path!r}, gates: {tally}{blocked}, output_dir="
            f"{str(self.output_dir) if self.output_dir else None!r})"
        )

    def _repr_html_(self) -> str:
        """Jupyter's view: the compact report (verdict, gates, latency plot, search scatters) from
        the manifest (see :func:`optkit.reporting.html.render_html`); before the run has finished,
        the escaped :meth:`__repr__`."""
        if self.manifest is None:
            import html

            return f"<pre>{html.escape(repr(self))}</pre>"
        from optkit.reporting.html import render_html

        return render_html(self.manifest, compact=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--json`` output): ``approved``, ``output_dir``, then the
        manifest's keys."""
        return {
            "approved": self.approved,
            "output_dir": str(self.output_dir) if self.output_dir else None,
            **(self.manifest.model_dump(mode="json") if self.manifest is not None else {}),
        }


__all__ = ["ConvertResult", "Event", "EventProgress", "NullProgress", "Progress", "StepRecord"]
