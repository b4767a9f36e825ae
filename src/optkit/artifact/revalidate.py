"""``optkit verify DIR --data PATH``: re-run an artifact's accuracy validation on new data.

The artifact's ``model.onnx`` is compared with the source model named in the manifest
(``source.path``; its sha256 must still be ``source.sha256``), run in its own framework, on the
given data, with the resolved recipe stored in the manifest, under the same paddings as convert
(``validation.padding``); the recipe's accuracy gates are then evaluated. Speed gates are not
re-measured (they depend on the machine, not on the data).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from optkit.artifact.verify import read_manifest
from optkit.errors import DataError, OutputError, SourceModelError
from optkit.paths import require_regular
from optkit.recipe import FIDELITY_METRICS, Recipe
from optkit.records.session import SessionSettings
from optkit.registry import detect_framework, resolve
from optkit.runners.ort_runner import OrtRunner
from optkit.sandbox.client import SandboxMode, SourceWorker
from optkit.sandbox.source import load_source
from optkit.validation.accuracy import AccuracyReport
from optkit.validation.data import load_validation_set
from optkit.validation.gates import GateResult
from optkit.validation.padding import reference_outputs
from optkit.validation.task_gates import available_metrics, resolve_gates
from optkit.validation.validate_model import validate_model

MODEL = "model.onnx"


@dataclass
class RevalidateResult:
    """Outcome of :func:`revalidate`.

    Attributes:
        data: the data file the model was validated on.
        samples: number of validation samples compared.
        accuracy: every accuracy figure (artifact vs source on ``data``), or None when the
            artifact's model did not run.
        gates: the recipe's accuracy gates evaluated on ``accuracy``.
        strict: a skipped gate counts as a failure.
        model_error: why ``model.onnx`` did not run in ONNX Runtime, or None.
        by_padding: ``{padding: {metric: value}}`` for each padding validated, as convert does
            (the recipe's ``validation.padding``: per-batch, fixed, or both, when the worse value
            of each gated metric counts); empty when the model did not run.
    """

    data: str
    samples: int
    accuracy: AccuracyReport | None
    gates: list[GateResult]
    strict: bool = False
    model_error: str | None = None
    by_padding: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def failed_gates(self) -> list[GateResult]:
        """Gates that failed, plus skipped ones when ``strict``."""
        return [g for g in self.gates if g.status == "failed" or (self.strict and g.status == "skipped")]

    @property
    def problems(self) -> list[str]:
        """One line per problem: the model that does not run, each failed gate with its value, or
        no accuracy gate that could be evaluated on this data (no evidence)."""
        if self.model_error:
            return [f"{MODEL} does not run in ONNX Runtime: {self.model_error}"]
        problems = [
            f"gate {g.status} on {self.data}: {g.name} (measured "
            f"{'nothing' if g.value is None else format(g.value, '.6g')}{'; ' + g.reason if g.reason else ''})"
            for g in self.failed_gates
        ]
        if not any(g.status != "skipped" and g.metric in FIDELITY_METRICS for g in self.gates):
            problems.append(
                f"no gate comparing the artifact with the source could be evaluated on {self.data}: "
                "nothing was validated"
            )
        return problems

    @property
    def ok(self) -> bool:
        """True when the model ran and every accuracy gate held."""
        return not self.problems


def revalidate(
    folder: Path,
    data: str,
    *,
    source: Path | None = None,
    trust_pickle: bool = False,
    trust_remote_code: bool = False,
    trust_model_code: bool = False,
    trust_skops_types: tuple[str, ...] | list[str] = (),
    sandbox: SandboxMode = "auto",
    strict: bool = False,
    threads: int | None = None,
) -> RevalidateResult:
    """Validate the artifact in ``folder`` against its source model again, on ``data``.

    Args:
        folder: an artifact folder written by ``optkit convert``.
        data: validation data (``.conll``, ``.txt`` or ``.npz``), as for ``convert --data``.
        source: where the source model is now, if not at the manifest's ``source.path`` (a path
            relative to where ``convert`` ran); its sha256 must match the manifest all the same.
        trust_pickle / trust_remote_code / trust_model_code / trust_skops_types / sandbox: as for
            :func:`optkit.pipeline.convert`; the source model is scanned, loaded and run in a
            confined worker process.
        strict: a gate that cannot be measured on this data (``skipped``) is a failure, and the
            source model must run confined.
        threads: intra-op threads of both runners; default the recipe's ``runtime.threads``.
            The artifact runs with its serving configuration (``session.json``, the manifest's
            ``serving``) when it has one, as it is served.

    Returns:
        The :class:`RevalidateResult`; ``ok`` is False when a gate failed or the model did not run.

    Raises:
        OutputError: not an artifact folder, no ``model.onnx``, or no valid resolved recipe.
        SourceModelError: the source model is missing, or its sha256 differs from the manifest's.
        DataError: the data is missing, unreadable or does not fit the source model's inputs.
    """
    manifest, _ = read_manifest(folder)
    if not (folder / MODEL).is_file():
        raise OutputError(f"{folder} has no {MODEL}", "this is not a complete optkit artifact folder")
    try:
        recipe = Recipe.model_validate(manifest.recipe.resolved)
    except ValidationError as exc:
        raise OutputError(
            f"{folder}/manifest.json holds no valid resolved recipe ({str(exc).splitlines()[0][:120]})",
            "the artifact was written by another optkit version; convert again",
        ) from exc
    src_path = Path(source) if source is not None else Path(manifest.source.path)
    if not str(src_path) or not src_path.exists():
        raise SourceModelError(
            f"source model not found: {src_path} (named in {folder}/manifest.json)",
            "run from the folder convert ran in, or pass --source PATH",
        )
    require_regular(src_path, "source model", SourceModelError, allow_dir=True)
    require_regular(data, "validation data", DataError, allow_dir=True)
    framework = detect_framework(src_path, manifest.source.framework)
    expected = manifest.source.sha256
    actual = resolve(framework.hasher)(src_path)
    if actual != expected:
        raise SourceModelError(
            f"source model {src_path} is not the one the artifact was made from: sha256 "
            f"{actual[:12]}… differs from the manifest's {str(expected)[:12]}…",
            "pass the exact source model the artifact was converted from (--source PATH)",
        )
    threads = threads or recipe.runtime.threads
    cfg = recipe.validation
    workdir = Path(tempfile.mkdtemp(prefix="optkit-"))
    try:
        with SourceWorker(workdir, [src_path], "require" if strict else sandbox) as worker:
            return _compare(
                folder,
                data,
                worker,
                framework,
                src_path,
                cfg,
                threads,
                strict,
                trust_pickle,
                trust_remote_code,
                trust_model_code,
                tuple(trust_skops_types),
                manifest.serving.settings if manifest.serving is not None else None,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _compare(
    folder: Path,
    data: str,
    worker: SourceWorker,
    framework,
    src_path: Path,
    cfg,
    threads: int,
    strict: bool,
    trust_pickle: bool,
    trust_remote_code: bool,
    trust_model_code: bool,
    trust_skops_types: tuple[str, ...] = (),
    session: SessionSettings | None = None,
) -> RevalidateResult:
    """Load the source in ``worker``, run both models on ``data`` and evaluate the accuracy gates."""
    src = load_source(
        worker,
        framework,
        src_path,
        threads,
        trust_pickle=trust_pickle,
        trust_remote_code=trust_remote_code,
        trust_model_code=trust_model_code,
        trust_skops_types=trust_skops_types,
    )
    vset = load_validation_set(data, src.info, cfg.max_samples, cfg.sequence_length)
    art_runner = OrtRunner(folder / MODEL, threads, session=session)
    try:
        art_runner.activate()
    except Exception as exc:  # onnxruntime raises its own exception types
        return RevalidateResult(data, vset.size, None, [], strict, str(exc).splitlines()[0][:300])
    with art_runner:  # already active; released when both models have run (or one fails)
        reference = reference_outputs(src.runner(threads), vset, cfg.batch_size, cfg.padding)
        first = reference.outputs[reference.paddings[0]]
        gates = resolve_gates(cfg.gates, available_metrics(first, vset, src.info), src.info.task).gates
        checked = validate_model(art_runner, reference, vset, src.info, gates, cfg.batch_size)
    return RevalidateResult(
        data, vset.size, checked.accuracy, checked.gates, strict, by_padding=checked.by_padding or {}
    )
