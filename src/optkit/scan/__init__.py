"""Static scan of a source model before it is loaded (defence in depth; the load itself runs inside
optkit's confinement).

:func:`scan_source` reads the model's files without running them and raises
:class:`~optkit.errors.UnsafeModelError` when they hold something that would run code or touch files
at load or inference: TensorFlow ops (:mod:`optkit.scan.tensorflow_ops`), Paddle ops
(:mod:`optkit.scan.paddle_ops`), skops types (:mod:`optkit.scan.skops_types`), pickle globals
(:mod:`optkit.scan.pickles`, fickling) and Hugging Face remote code (:mod:`optkit.scan.remote_code`).
"""

from __future__ import annotations

from pathlib import Path

from optkit.scan.remote_code import remote_code_files
from optkit.scan.report import Finding, ScanReport
from optkit.scan.skops_types import trusted_skops_types

__all__ = ["Finding", "ScanReport", "SCANNER", "remote_code_files", "scan_source", "trusted_skops_types"]

SCANNER = "optkit.scan"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".pt2", ".ts")
# what transformers.Trainer writes next to a checkpoint; from_pretrained never reads them
TRAINER_STATE_FILES = frozenset({"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt"})


def _optkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("optkit")
    except PackageNotFoundError:
        return "unknown"


def _scan_torch(path: Path, report: ScanReport, trust_remote_code: bool) -> None:
    from optkit.scan.pickles import fickling_version, scan_pickle_file
    from optkit.scan.remote_code import scan_remote_code

    report.scanners["fickling"] = fickling_version()
    files = [path]
    if path.is_dir():
        if trust_remote_code:
            report.notes.append("remote code trusted (--trust-remote-code): " + ", ".join(remote_code_files(path)))
        else:
            report.findings += scan_remote_code(path)
            report.checked.append(str(path))
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)
        unused = [p for p in files if p.name in TRAINER_STATE_FILES or p.name.startswith("rng_state")]
        if unused:
            report.notes.append(
                "not scanned, transformers does not load them (Trainer state): " + ", ".join(str(p) for p in unused)
            )
            files = [p for p in files if p not in unused]
    for file in files:
        kind = _torch_kind(file)
        if kind in ("torchscript", "torch.export"):
            # their *.pkl entries are read by torch's own restricted unpickler, not Python's pickle
            report.notes.append(f"{file}: {kind} archive (no Python unpickling at load; pickles not scanned)")
            continue
        checked, findings = scan_pickle_file(file)
        report.checked += checked
        report.findings += findings


def _torch_kind(file: Path) -> str:
    """``torch_format.sniff``'s kind.

    Raises:
        SourceModelError: the file is empty, a zip archive that is truncated or corrupt, or neither
            a zip nor a pickle (sniff's message).
    """
    from optkit.errors import SourceModelError
    from optkit.formats.torch_format import sniff
    from optkit.scan.pickles import corrupt

    try:
        with file.open("rb") as handle:
            head = handle.read(2)
    except OSError as exc:
        raise corrupt(str(file), str(exc)) from exc
    if not head:
        raise corrupt(str(file), "empty file")
    try:
        return sniff(file)
    except SourceModelError as exc:
        if head == b"PK":  # a zip that no longer reads (a truncated TorchScript or torch.export archive)
            raise corrupt(str(file), str(exc.__cause__ or exc.message)) from exc
        raise  # neither zip nor pickle: sniff says what it is (e.g. text named .pt)


def _scan_tensorflow(path: Path, report: ScanReport) -> None:
    from optkit.scan.tensorflow_ops import scan_keras, scan_savedmodel

    if path.is_dir():
        functions, findings = scan_savedmodel(path)
        report.checked += [f"{path / 'saved_model.pb'}!{f}" for f in functions]
    else:
        checked, findings = scan_keras(path)
        report.checked += checked
    report.findings += findings


def _scan_sklearn(path: Path, report: ScanReport, consent: tuple[str, ...] = ()) -> None:
    report.checked.append(str(path))
    if path.suffix.lower() == ".skops":
        from optkit.scan.skops_types import SAFE_CLASSES, is_sklearn_class, scan_skops

        trusted, findings = scan_skops(path, consent)
        for name in trusted:
            if is_sklearn_class(name):
                report.notes.append(f"trusted scikit-learn class {name}")
            elif name in SAFE_CLASSES:
                report.notes.append(f"trusted container class {name}")
            else:
                report.notes.append(f"trusted class {name} (consented: --trust-skops-type)")
        report.findings += findings
        return
    from optkit.scan.pickles import fickling_version, scan_pickle_file

    report.scanners["fickling"] = fickling_version()
    report.findings += scan_pickle_file(path)[1]


def _scan_paddle(path: Path, report: ScanReport) -> None:
    from optkit.formats.paddle_format import program_files
    from optkit.scan.paddle_ops import scan_paddle

    program = program_files(path)[0]
    report.checked.append(str(program))
    report.findings += scan_paddle(program)


def _scan_onnx(path: Path, report: ScanReport) -> None:
    from optkit.scan.onnx_domains import onnx_domains

    domains, custom = onnx_domains(path)
    report.checked.append(str(path))
    report.notes.append(f"op domains: {', '.join(d or 'ai.onnx' for d in domains)}")
    if custom:
        report.notes.append(
            f"custom op domains (need a custom-op library; ONNX Runtime refuses them): {', '.join(custom)}"
        )


SCANNERS = {"tensorflow": _scan_tensorflow, "sklearn": _scan_sklearn, "paddle": _scan_paddle, "onnx": _scan_onnx}


def scan_source(
    path: Path,
    framework: str,
    *,
    trust_model_code: bool = False,
    trust_remote_code: bool = False,
    trust_skops_types: tuple[str, ...] = (),
) -> ScanReport:
    """Scan a source model's files, before loading it, for content that runs code or touches files.

    Args:
        path: the model file or folder, as given to ``optkit convert``.
        framework: the registry key (``"torch"``, ``"tensorflow"``, ``"sklearn"``, ``"paddle"``,
            ``"onnx"``).
        trust_model_code: skip the scan entirely (``--trust-model-code``; dangerous: a hostile model
            then runs whatever it holds, limited only by the confinement).
        trust_remote_code: accept a Hugging Face folder's own code (``auto_map``, ``*.py``;
            ``--trust-remote-code``); its pickles are still scanned. The code then runs inside the
            confinement.
        trust_skops_types: classes from outside scikit-learn a ``.skops`` file may hold
            (``--trust-skops-type``: exact names or package prefixes; classes only, see
            :func:`optkit.scan.skops_types.consented`).

    Returns:
        The :class:`ScanReport` (``to_dict()`` goes in the manifest); ``skipped`` with
        ``trust_model_code``.

    Raises:
        UnsafeModelError: a finding; the message names the op/type/global and the file, the hint
            names the flag.
        SourceModelError: a file the scan must read is missing or corrupt.
        DependencyError: the framework module needed to parse the file is not installed.
    """
    path = Path(path)
    report = ScanReport(framework, scanners={SCANNER: _optkit_version()})
    if trust_model_code:
        report.skipped = True
        report.notes.append("scan skipped (--trust-model-code)")
        return report
    if framework == "torch":
        _scan_torch(path, report, trust_remote_code)
    elif framework == "sklearn":
        _scan_sklearn(path, report, tuple(trust_skops_types))
    elif framework in SCANNERS:
        SCANNERS[framework](path, report)
    else:
        report.notes.append(f"no scanner for framework '{framework}'")
    report.raise_for_findings()
    return report
