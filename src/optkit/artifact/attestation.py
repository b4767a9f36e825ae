"""``attestation.intoto.json``: the approval as an in-toto Statement v1.

The statement names every artifact file the manifest lists (its *subject*, each with its sha256) and
says, in its *predicate*, what was approved: the source model and recipe (with their hashes), the
optkit and framework versions, every gate with its status, value and threshold, and the verdict.
It is a plain, unsigned JSON document; ``model.sig`` (see :mod:`optkit.artifact.signing`) signs it
together with every other file of the artifact.

Format: in-toto Attestation Framework, Statement layer v1,
https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
(``_type``, ``subject`` = list of ``{"name", "digest": {"sha256": ...}}``, ``predicateType``,
``predicate``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optkit.artifact.manifest import Manifest

ATTESTATION = "attestation.intoto.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://optkit.dev/approval/v1"
GATE_KEYS = ("name", "kind", "status", "value", "threshold")


def build_statement(manifest: Manifest) -> dict[str, Any]:
    """The in-toto Statement v1 (a JSON-ready dict) of ``manifest``'s approval.

    The subject is every file of ``manifest.files`` except the attestation itself (so the statement
    can be written before the final manifest, which lists the attestation too). ``evidence`` and
    ``sandbox`` are copied from the manifest's fields of those names (``{}`` for a sandbox not
    recorded, as earlier versions wrote it).

    Args:
        manifest: the artifact's :class:`~optkit.artifact.manifest.Manifest`.

    Returns:
        ``{"_type", "subject", "predicateType", "predicate"}``, per
        https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md.
    """
    source, recipe = manifest.source, manifest.recipe
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": entry.sha256}}
            for name, entry in sorted(manifest.files.items())
            if name != ATTESTATION
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "source": {"path": source.path, "framework": source.framework, "sha256": source.sha256},
            "recipe": {"name": recipe.name, "sha256": recipe.sha256},
            "optkit_version": manifest.artifact.optkit_version,
            "framework_versions": dict(source.versions),
            # as manifest.json stores them (NaN and infinity become null)
            "gates": [gate.model_dump(mode="json", include=set(GATE_KEYS)) for gate in manifest.gates],
            "approved": manifest.approved,
            "evidence": manifest.evidence,
            "sandbox": manifest.sandbox.model_dump(mode="json") if manifest.sandbox is not None else {},
        },
    }


def write_attestation(folder: Path, manifest: Manifest) -> str:
    """Write :func:`build_statement` of ``manifest`` to ``folder/attestation.intoto.json``.

    Returns:
        The file name written (``"attestation.intoto.json"``), to add to the manifest's files.

    Raises:
        OSError: the file cannot be written (the caller's ``staging`` block turns it into an
            :class:`~optkit.errors.OutputError`).
    """
    (folder / ATTESTATION).write_text(json.dumps(build_statement(manifest), indent=2, sort_keys=True) + "\n")
    return ATTESTATION


def check_attestation(folder: Path, manifest: Manifest) -> list[str]:
    """Problems (one line each) where ``folder``'s attestation disagrees with ``manifest``.

    An artifact whose manifest does not list ``attestation.intoto.json`` (made before attestations)
    has nothing to check: ``[]``. Its sha256 is checked with every other file by
    :func:`optkit.artifact.verify.verify_artifact`; this checks what it *says*: the statement type,
    the subject (every other listed file with the manifest's sha256) and the predicate.
    """
    if ATTESTATION not in manifest.files:
        return []
    path = folder / ATTESTATION
    if path.is_symlink() or not path.is_file():
        return []  # reported as a missing file or a symlink by verify_artifact
    try:
        statement = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"invalid attestation: {ATTESTATION} is not JSON ({str(exc).splitlines()[0][:80]})"]
    if not isinstance(statement, dict):
        return [f"invalid attestation: {ATTESTATION} is not an in-toto statement"]
    expected = build_statement(manifest)
    return [
        f"attestation disagrees with the manifest: {key}" for key in expected if statement.get(key) != expected[key]
    ]
