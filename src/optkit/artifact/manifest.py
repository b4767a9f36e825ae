"""``manifest.json``: what was done to make an artifact, with hashes, versions and every gate.

The manifest lists the sha256 of every other file in the artifact folder (it cannot hash itself),
of the source model and of the validation data, plus the resolved recipe and its hash.

The typed model and its sections live in :mod:`optkit.records.manifest` (below the result types,
which hold a manifest); this module builds one from a result (:func:`build_manifest`), seals it
with its own digest and hashes the artifact's files.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import onnx

from optkit.artifact.environment import environment
from optkit.hashing import sha256_file
from optkit.records.manifest import (
    SCHEMA_VERSION,
    AccuracyRecord,
    ArtifactRecord,
    FileEntry,
    GateRecord,
    Manifest,
    RecipeRecord,
    SearchSummary,
    SpeedRecord,
    StepDetails,
    StepEntry,
)
from optkit.results import ConvertResult, StepRecord
from optkit.version import __version__

__all__ = [
    "SCHEMA_VERSION",
    "FileEntry",
    "Manifest",
    "build_manifest",
    "digest_ok",
    "file_entries",
    "seal",
    "search_summary",
    "sha256_file",
]


def build_manifest(
    result: ConvertResult, model: onnx.ModelProto, provider: str, files: dict[str, FileEntry]
) -> Manifest:
    """The manifest of a finished conversion (digest left empty: see :func:`seal`).

    Args:
        result: the conversion's result (verdict, source, data, steps, figures, gates).
        model: the final ONNX model (opsets, IR version and node count are recorded).
        provider: the ONNX Runtime execution provider the artifact was validated with.
        files: the artifact's files with their hashes (``{}`` before they are written).

    Serialises to the keys ``manifest.json`` has always had: a step's search report under its
    ``details.search``, gates, accuracy and speed as their dataclasses' fields.
    """
    recipe = result.recipe
    return Manifest(
        approved=result.approved,
        strict=result.strict,
        recipe=RecipeRecord(name=recipe.name, sha256=recipe.sha256(), resolved=recipe.model_dump(mode="json")),
        source=result.source,
        artifact=ArtifactRecord(
            opset={imp.domain or "ai.onnx": imp.version for imp in model.opset_import},
            execution_provider=provider,
            optkit_version=__version__,
            ir_version=model.ir_version,
            nodes=len(model.graph.node),
        ),
        files=files,
        environment=environment(),
        data=result.data,
        steps=[_step_entry(s) for s in result.steps],
        accuracy=AccuracyRecord.model_validate(dataclasses.asdict(result.accuracy)),
        speed=SpeedRecord.model_validate(dataclasses.asdict(result.speed)) if result.speed else None,
        gates=[GateRecord.model_validate(dataclasses.asdict(g)) for g in result.gates],
        warnings=result.warnings,
        evidence=result.evidence,
        sandbox=result.sandbox,
        search=[search_summary(s) for s in result.steps if s.search is not None],
        serving=result.serving,
    )


def _step_entry(step: StepRecord) -> StepEntry:
    details = StepDetails.model_validate({**step.details, "search": step.search})
    return StepEntry(
        name=step.name, seconds=step.seconds, details=details, warnings=step.warnings, skipped=step.skipped
    )


def search_summary(step: StepRecord) -> SearchSummary:
    """The manifest's top-level record of one search (the full candidate table is in the step).

    Raises:
        ValueError: ``step`` ran no search, or its report names no chosen candidate.
    """
    search = step.search
    if search is None:
        raise ValueError(f"step {step.name!r} ran no search")
    return SearchSummary(
        step=step.name,
        strategy=search.strategy,
        candidates=search.tried,
        chosen=search.chosen,
        settings=search.chosen_candidate.settings,
        met_gates=search.met_gates,
        fp32_nodes=search.fp32_nodes,
        elapsed_s=search.elapsed_s,
    )


DIGEST_PLACEHOLDER = "0" * 64


def seal(manifest: Manifest) -> str:
    """The manifest's JSON text with ``digest`` = sha256 of that exact text written with a
    placeholder digest, so that any changed byte of ``manifest.json`` (whitespace included) is
    detected by :func:`digest_ok`."""
    text = manifest.model_copy(update={"digest": DIGEST_PLACEHOLDER}).model_dump_json(indent=2) + "\n"
    return text.replace(DIGEST_PLACEHOLDER, hashlib.sha256(text.encode()).hexdigest(), 1)


def digest_ok(text: str, digest: str) -> bool:
    """True when ``text`` (a manifest.json's content) is exactly what :func:`seal` wrote."""
    if len(digest) != 64 or digest not in text:
        return False
    return hashlib.sha256(text.replace(digest, DIGEST_PLACEHOLDER, 1).encode()).hexdigest() == digest


def file_entries(folder: Path, names: list[str]) -> dict[str, FileEntry]:
    """Hash the named files of ``folder``."""
    return {n: FileEntry(sha256=sha256_file(folder / n), bytes=(folder / n).stat().st_size) for n in sorted(names)}
