"""``optkit verify``: check an artifact folder against its manifest before deployment.

``manifest.json`` must be byte for byte what optkit wrote (its ``digest``); every file it lists must exist with the recorded sha256 and size; any other file
in the folder is a problem too (something was added after approval); the manifest must say
``approved`` and every gate must have passed (a skipped gate is a problem only with ``strict``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from optkit.artifact.manifest import Manifest, digest_ok, sha256_file
from optkit.errors import OutputError

MANIFEST = "manifest.json"


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_artifact`.

    Attributes:
        ok: True when no problem was found.
        problems: one line per problem, each naming the file or gate.
        checked_files: files whose hash was checked.
    """

    ok: bool
    problems: list[str] = field(default_factory=list)
    checked_files: list[str] = field(default_factory=list)


def read_manifest(folder: Path) -> tuple[Manifest, str]:
    """The parsed ``manifest.json`` of an artifact folder, and its exact text.

    Raises:
        OutputError: the folder or its manifest is missing, or the manifest is not a valid
            optkit manifest.
    """
    if not folder.is_dir():
        raise OutputError(f"artifact folder not found: {folder}", "pass the folder optkit convert wrote (-o)")
    path = folder / MANIFEST
    if not path.is_file():
        raise OutputError(f"{folder} has no {MANIFEST}", "this is not an optkit artifact folder")
    try:
        text = path.read_text()
        manifest = Manifest.model_validate(json.loads(text))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
        raise OutputError(f"{path} is not a valid optkit manifest ({str(exc).splitlines()[0][:120]})",
                          "the manifest was edited or truncated; convert again") from exc
    return manifest, text


def verify_artifact(folder: Path, strict: bool = False) -> VerifyResult:
    """Verify ``folder`` against its ``manifest.json``.

    Raises:
        OutputError: the folder or its manifest is missing, or the manifest is not a valid
            optkit manifest (nothing can be verified).
    """
    manifest, text = read_manifest(folder)
    problems = [] if digest_ok(text, manifest.digest) else [f"modified file: {MANIFEST} (its digest does not match)"]
    for name, entry in manifest.files.items():
        file = folder / name
        if not file.is_file():
            problems.append(f"missing file: {name}")
            continue
        if file.stat().st_size != entry.bytes or sha256_file(file) != entry.sha256:
            problems.append(f"modified file: {name} (sha256 differs from the manifest)")
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    for extra in sorted(present - set(manifest.files) - {MANIFEST}):
        problems.append(f"extra file not in the manifest: {extra}")
    if not manifest.approved:
        problems.append("the manifest does not say approved")
    for gate in manifest.gates:
        if gate["status"] == "failed" or (strict and gate["status"] == "skipped"):
            problems.append(f"gate {gate['status']}: {gate['name']}")
    return VerifyResult(not problems, problems, sorted(manifest.files))
