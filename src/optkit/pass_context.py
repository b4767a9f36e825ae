"""What every pass receives and returns: :class:`PassContext` and :class:`PassOutcome`.

A core module (below passes/, search/, exporters/ and sandbox/, which all use it) so that a search
can take a pass's context without importing the passes package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optkit.io_spec import ModelInfo
from optkit.records.figures import Figure
from optkit.records.search import SearchReport
from optkit.records.session import ServingConfig


@dataclass
class PassContext:
    """Shared, read-only facts for passes.

    Attributes:
        workdir: scratch folder for intermediate models (deleted after the run).
        info: the source model's names, task and transformer shape (heads, hidden size).
        index: position of this pass in the recipe (0-based), used to name output files.
        external_threshold_mb: save intermediate models with external data above this size.
        validation: the validation inputs (``ValidationSet``), for passes that need data.
        evaluator: a :class:`~optkit.search.evaluator.CandidateEvaluator` that scores a candidate
            model against the source with the recipe's accuracy gates (for searching passes).
        threads: intra-op threads for any model a pass runs (the recipe's ``runtime.threads``).
        progress: ``(message) -> None``, one line per search step for the user (the pipeline passes
            its :class:`~optkit.results.Progress`'s ``message``).
    """

    workdir: Path
    info: ModelInfo
    index: int = 0
    external_threshold_mb: float = 1800.0
    validation: Any = None
    evaluator: Any = None
    threads: int = 2
    progress: Callable[[str], None] = lambda message: None

    def output_path(self, name: str) -> Path:
        """A fresh model path in the workdir for this pass, e.g. ``02-fuse.onnx``."""
        return self.workdir / f"{self.index + 1:02d}-{name}.onnx"


@dataclass
class PassOutcome:
    """The result of one pass.

    Attributes:
        model_path: the output model (may be the input path when the pass changed nothing).
        details: figures for the report and manifest, as JSON values (fusion counts, node counts,
            settings).
        warnings: problems the user must see in the report (e.g. 0 Attention fusions).
        skipped: a reason when the pass left the model unchanged on purpose or after a failure.
        search: a searching pass's candidate table and choice (the manifest writes it under the
            step's ``details.search``).
        serving: the session settings the artifact is to be served with (the ``tune-session``
            pass); the pipeline validates, benchmarks and emits the artifact with them.
    """

    model_path: Path
    details: dict[str, Figure] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None
    search: SearchReport | None = None
    serving: ServingConfig | None = None
