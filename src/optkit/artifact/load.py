""":func:`load_session`: an ONNX Runtime ``InferenceSession`` of an approved artifact, built with its
serving configuration (``session.json``) when it has one, after the checks of ``optkit verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optkit.artifact.verify import read_manifest, verify_artifact
from optkit.errors import OutputError
from optkit.records.session import SessionSettings
from optkit.runners.ort_runner import session_options


def load_session(artifact_dir: str | Path, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``artifact_dir/model.onnx`` (CPUExecutionProvider),
    with the artifact's serving configuration: the settings the ``tune-session`` pass chose and the
    speed gates measured. Without one, optkit's default session with the recipe's
    ``runtime.threads`` (or ``threads``).

    The folder is verified first, as ``optkit verify`` does (hashes, manifest digest, attestation,
    approval, gates, ``session.json``), so a tampered artifact is never loaded.

    Args:
        artifact_dir: the folder ``optkit convert`` wrote.
        threads: intra-op threads for an artifact without a serving configuration; None = the
            recipe's ``runtime.threads``. Ignored when the artifact has one.

    Raises:
        OutputError: not an artifact folder, or it does not verify (the problems are listed).
    """
    import onnxruntime as ort

    folder = Path(artifact_dir)
    checked = verify_artifact(folder)
    if not checked.ok:
        raise OutputError(
            f"{folder} does not verify: {'; '.join(checked.problems[:5])}",
            "run `optkit verify` on it for every problem; convert again",
        )
    if checked.serving is not None:
        settings = checked.serving.settings
    else:
        runtime = read_manifest(folder)[0].recipe.resolved.get("runtime")
        recipe_threads = runtime.get("threads") if isinstance(runtime, dict) else None
        fallback = recipe_threads if isinstance(recipe_threads, int) and recipe_threads >= 1 else 2
        settings = SessionSettings.default(threads or fallback)
    return ort.InferenceSession(
        str(folder / "model.onnx"), session_options(settings), providers=["CPUExecutionProvider"]
    )


__all__ = ["load_session"]
