"""What a conversion returns: :class:`ConvertResult` (verdict, figures, manifest) made of
:class:`StepRecord` entries, and the progress callback type :data:`Event`.

Its own module, below :mod:`optkit.pipeline` and :mod:`optkit.artifact`, so that the report
(:mod:`optkit.artifact.report`) and the CLI can read a result without importing the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optkit.errors import GateFailed
from optkit.recipe import FIDELITY_METRICS, Recipe
from optkit.validation.accuracy import AccuracyReport
from optkit.validation.gates import GateResult
from optkit.validation.speed import SpeedReport

Event = Callable[[str, Any], None]
"""A progress callback ``(event, payload)``: see :func:`optkit.pipeline.convert`'s ``on_event``."""


@dataclass
class StepRecord:
    """One pipeline step (load, export, a pass, validation, benchmark) with its wall time (s)."""

    name: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class ConvertResult:
    """Everything a conversion measured and decided.

    Attributes:
        approved: True when every gate passed (and, with ``strict``, none was skipped).
        output_dir: the emitted artifact folder, or None when not approved.
        gates: every gate's verdict (all are evaluated).
        accuracy / speed: measured figures (speed is None if the run stopped before it).
        manifest: the manifest as a dict (also written to ``manifest.json`` when approved).
        evidence: ``"real-data"`` or ``"random-inputs"`` (validated on generated inputs; ``strict``
            rejects it).
        sandbox: how the source model was confined (``status`` ``confined`` / ``unavailable`` / ``off``).
    """

    approved: bool
    strict: bool
    recipe: Recipe
    source: dict[str, Any]
    data: dict[str, Any]
    steps: list[StepRecord]
    accuracy: AccuracyReport
    speed: SpeedReport | None
    gates: list[GateResult]
    warnings: list[str]
    output_dir: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    evidence: str = "real-data"
    sandbox: dict[str, Any] = field(default_factory=dict)

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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--json`` output)."""
        return {
            "approved": self.approved,
            "output_dir": str(self.output_dir) if self.output_dir else None,
            **self.manifest,
        }


__all__ = ["ConvertResult", "Event", "StepRecord"]
