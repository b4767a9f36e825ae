"""``optkit verify``: check an artifact folder against its manifest before deployment.

``manifest.json`` must be byte for byte what optkit wrote (its ``digest``); every file it lists must
exist as a regular file (never a symlink) with the recorded sha256 and size; any other entry of the
folder (file, folder, empty folder, symlink) is a problem too (something was added after approval);
``attestation.intoto.json`` must agree with the manifest; the manifest must say ``approved`` and
every gate must have passed (a skipped gate is a problem only with ``strict``). An artifact with a
serving configuration (``session.json``, written by the ``tune-session`` pass) must hold a valid one
that agrees with the manifest, and, when nothing else is wrong, ``model.onnx`` is loaded in ONNX
Runtime with those settings (as it will be served).

A digest only catches accidents: whoever edits a file can recompute it. ``model.sig`` (see
:mod:`optkit.artifact.signing`) catches forgeries, when checked with a public key (or a Sigstore
identity). With ``strict``, an artifact approved on random inputs, or without any accuracy gate
evaluated, is a problem too.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from optkit.artifact.attestation import check_attestation
from optkit.artifact.manifest import Manifest, digest_ok, sha256_file
from optkit.artifact.serving import check_serving
from optkit.artifact.signing import SIGNATURE, SignatureCheck, verify_signature
from optkit.errors import OutputError
from optkit.recipe import FIDELITY_METRICS
from optkit.records.session import ServingConfig
from optkit.validation.gates import status_blocks

MANIFEST = "manifest.json"


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_artifact`.

    Attributes:
        ok: True when no problem was found.
        problems: one line per problem, each naming the file or gate.
        checked_files: files whose hash was checked.
        signature: the ``model.sig`` check (``unsigned`` when there is none).
        serving: the serving configuration ``model.onnx`` was loaded with (None when the artifact
            has none, or when it was not loaded because of another problem).
    """

    ok: bool
    problems: list[str] = field(default_factory=list)
    checked_files: list[str] = field(default_factory=list)
    signature: SignatureCheck = field(default_factory=lambda: SignatureCheck("unsigned"))
    serving: ServingConfig | None = None


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
        raise OutputError(
            f"{path} is not a valid optkit manifest ({str(exc).splitlines()[0][:120]})",
            "the manifest was edited or truncated; convert again",
        ) from exc
    return manifest, text


def verify_artifact(
    folder: Path,
    strict: bool = False,
    public_key: Path | None = None,
    identity: str | None = None,
    oidc_issuer: str | None = None,
) -> VerifyResult:
    """Verify ``folder`` against its ``manifest.json`` and, when given a key or an identity, its
    signature.

    Args:
        folder: the artifact folder.
        strict: a skipped gate is a problem; so is an artifact approved on random inputs
            (``evidence == "random-inputs"``) or with no accuracy gate evaluated; and with
            ``public_key``/``identity`` the signature must be valid.
        public_key: PEM EC public key: ``model.sig`` must be valid for it.
        identity / oidc_issuer: the Sigstore identity that must have signed ``model.sig`` (keyless).

    A ``model.sig`` that is invalid for the given key or identity is always a problem; a missing one
    is a problem when a key or identity is given.

    Raises:
        OutputError: the folder or its manifest is missing, or the manifest is not a valid
            optkit manifest (nothing can be verified).
        SigningError: contradictory key options, or an unusable public key (see
            :func:`optkit.artifact.signing.verify_signature`).
    """
    manifest, text = read_manifest(folder)
    signature = verify_signature(folder, public_key, identity, oidc_issuer)
    problems = [] if digest_ok(text, manifest.digest) else [f"modified file: {MANIFEST} (its digest does not match)"]
    problems += _file_problems(folder, manifest)
    problems += check_attestation(folder, manifest)
    serving, serving_problems = check_serving(folder, manifest)
    problems += serving_problems
    if not manifest.approved:
        problems.append("the manifest does not say approved")
    for gate in manifest.gates:
        if status_blocks(gate.status, strict):
            problems.append(f"gate {gate.status}: {gate.name}")
    if strict:
        problems += _strict_problems(manifest)
    checking = public_key is not None or identity is not None
    if signature.status == "invalid":
        problems.append(f"signature invalid: {signature.reason}")
    elif signature.status == "unsigned" and checking:
        problems.append(f"unsigned: no {SIGNATURE}, but a signature was asked for (--public-key/--identity)")
    if serving is not None and not problems:  # never load a model that failed any other check
        problem = _load_problem(folder, serving)
        if problem:
            problems.append(problem)
            serving = None
    elif problems:
        serving = None
    return VerifyResult(not problems, problems, sorted(manifest.files), signature, serving)


def _load_problem(folder: Path, serving: ServingConfig) -> str | None:
    """Create (and release) an ONNX Runtime session of ``model.onnx`` with ``serving``'s settings;
    the reason when it fails, else None."""
    from optkit.runners.ort_runner import OrtRunner

    runner = OrtRunner(folder / "model.onnx", serving.settings.intra_op_num_threads, session=serving.settings)
    try:
        runner.activate()
    except Exception as exc:  # onnxruntime raises its own exception types
        return f"model.onnx does not load with its serving settings: {(str(exc).splitlines() or [''])[0][:200]}"
    runner.deactivate()
    return None


def _file_problems(folder: Path, manifest: Manifest) -> list[str]:
    """Listed files that are missing, changed, symlinks or outside the folder; entries not listed."""
    problems = []
    listed_dirs: set[str] = set()
    for name, entry in manifest.files.items():
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            problems.append(f"manifest lists a path outside the artifact: {name}")
            continue
        listed_dirs.update(str(p) for p in path.parents if str(p) != ".")
        file = folder / name
        try:
            info = os.lstat(file)
        except OSError:
            problems.append(f"missing file: {name}")
            continue
        if stat.S_ISLNK(info.st_mode):
            continue  # reported by the walk below, never followed
        if not stat.S_ISREG(info.st_mode):
            problems.append(f"not a regular file: {name}")
        elif info.st_size != entry.bytes or sha256_file(file) != entry.sha256:
            problems.append(f"modified file: {name} (sha256 differs from the manifest)")
    expected = set(manifest.files) | {MANIFEST, SIGNATURE}
    for rel, kind in _entries(folder):
        if kind == "symlink":
            problems.append(f"symlink in the artifact: {rel} (an artifact holds regular files only)")
        elif kind == "folder" and rel not in listed_dirs:
            problems.append(f"extra folder not in the manifest: {rel}")
        elif kind == "file" and rel not in expected:
            problems.append(f"extra file not in the manifest: {rel}")
        elif kind == "other":
            problems.append(f"not a regular file: {rel}")
    return problems


def _entries(folder: Path) -> list[tuple[str, str]]:
    """Every entry under ``folder`` (relative POSIX path, ``file``/``folder``/``symlink``/``other``),
    found without following any symlink (a symlinked folder is one entry, not descended)."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(root) / name
            mode = os.lstat(path).st_mode
            kind = (
                "symlink"
                if stat.S_ISLNK(mode)
                else "folder"
                if stat.S_ISDIR(mode)
                else "file"
                if stat.S_ISREG(mode)
                else "other"
            )
            found.append((path.relative_to(folder).as_posix(), kind))
    return sorted(found)


def _strict_problems(manifest: Manifest) -> list[str]:
    """What ``strict`` adds: evidence from real data, at least one accuracy gate evaluated, and a
    source model that ran confined (``sandbox.status == "confined"``)."""
    problems = []
    if manifest.evidence == "random-inputs":
        problems.append("approved on random inputs (evidence: random-inputs), not real data")
    status = manifest.sandbox.status if manifest.sandbox is not None else "not recorded"
    if status != "confined":
        problems.append(f"the source model did not run confined when this artifact was made (sandbox: {status})")
    evaluated = [
        g for g in manifest.gates if g.kind == "accuracy" and g.status != "skipped" and g.metric in FIDELITY_METRICS
    ]
    if not evaluated:
        problems.append(
            "no gate comparing the artifact with the source was evaluated (every one skipped, or none in the recipe)"
        )
    return problems
