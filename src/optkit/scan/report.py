"""Typed results of the static scan: :class:`Finding` and :class:`ScanReport` (goes in the manifest)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from optkit.errors import UnsafeModelError

TRUST_MODEL_CODE = "--trust-model-code"
TRUST_REMOTE_CODE = "--trust-remote-code"


@dataclass(frozen=True)
class Finding:
    """One unsafe thing found in a model file.

    Attributes:
        kind: ``"tf-op"``, ``"paddle-op"``, ``"skops-type"``, ``"pickle-global"``, ``"keras-layer"``
            or ``"remote-code"``.
        name: the op, type, global or file name that was refused (e.g. ``"WriteFile"``).
        file: the file it was found in.
        detail: where inside the file (function, block, analysis message), or ``""``.
        hint: what the user can do about it, when the generic hint (skip the scan with
            ``--trust-model-code``) would not work or is not the right advice; ``""`` for the generic one.
    """

    kind: str
    name: str
    file: str
    detail: str = ""
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict of the four fields."""
        return {"kind": self.kind, "name": self.name, "file": self.file, "detail": self.detail}


@dataclass
class ScanReport:
    """What the scan checked and found, for ``manifest.json``.

    Attributes:
        framework: the registry key scanned for (``"torch"``, ``"tensorflow"``, ...).
        scanners: ``{name: version}`` of the scanners that ran (optkit's own and e.g. fickling).
        checked: the files (or zip entries) that were read.
        findings: what was refused (empty when the model passed).
        notes: facts worth recording that are not findings (e.g. ONNX custom op domains).
        skipped: True when ``trust_model_code`` skipped the scan.
    """

    framework: str
    scanners: dict[str, str] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: bool = False

    @property
    def passed(self) -> bool:
        """True when nothing was found (a skipped scan did not pass: it did not run)."""
        return not self.skipped and not self.findings

    def to_dict(self) -> dict:
        """A JSON-ready dict for the manifest's ``scan`` entry."""
        return {
            "framework": self.framework,
            "skipped": self.skipped,
            "passed": self.passed,
            "scanners": dict(self.scanners),
            "checked": list(self.checked),
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
        }

    def raise_for_findings(self) -> None:
        """Raise :class:`~optkit.errors.UnsafeModelError` for the first finding (the message says how
        many more there are); do nothing when there are none."""
        if not self.findings:
            return
        first = self.findings[0]
        more = f" (and {len(self.findings) - 1} more)" if len(self.findings) > 1 else ""
        where = f" ({first.detail})" if first.detail else ""
        if first.kind == "remote-code":
            names = ", ".join(Path(f.file).name for f in self.findings)
            raise UnsafeModelError(
                f"{first.file} ships custom code ({names}) that transformers would import and run",
                f"pass {TRUST_REMOTE_CODE} to run it (inside optkit's confinement); only for code you have read",
            )
        raise UnsafeModelError(
            f"{first.kind} '{first.name}' in {first.file}{where}{more}: loading or running it would run code "
            "or touch files",
            first.hint
            or f"pass {TRUST_MODEL_CODE} to skip the scan (dangerous: the model then runs whatever it holds)",
        )
