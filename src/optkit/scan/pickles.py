"""Pickles (``.pkl``/``.joblib``, legacy ``torch.save`` files, the ``*.pkl`` entries of torch zip
archives) checked with fickling (https://github.com/trailofbits/fickling), which decompiles the
pickle opcodes to Python without running them.

Policy: a pickle is refused when fickling rates one of its results *likely overtly malicious* or
worse (imports from ``os``, ``posix``, ``subprocess``, ``builtins`` other than safe ones, ``eval``,
``exec``, ``torch.hub``...: ``fickling.fickle.UNSAFE_IMPORTS``). Its lower ratings ("imports a
module outside the standard library") hold for every scikit-learn or torch pickle and are not
findings. Exceptions: joblib's own ``NumpyArrayWrapper`` (how joblib stores arrays).

fickling stops at the first byte that is no pickle opcode — joblib writes raw array buffers inside
its pickle stream — so the whole file is also searched for the byte forms of a ``GLOBAL`` or
``STACK_GLOBAL`` naming a module on fickling's unsafe list. Neither check is proof of safety: a
pickle can still run code through modules no list names; loading one stays behind
``--trust-pickle`` and inside the confinement.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from optkit.scan.report import Finding

BENIGN_TRIGGERS = frozenset({"from joblib.numpy_pickle import NumpyArrayWrapper"})
PICKLE_ENTRY_SUFFIXES = (".pkl", ".pickle")


def fickling_version() -> str:
    """The installed fickling's version."""
    from importlib.metadata import version

    return version("fickling")


GLOBAL_RE = re.compile(rb"c([A-Za-z_][\w.]{0,80})\n([A-Za-z_][\w.]{0,80})\n")
STACK_GLOBAL_RE = re.compile(rb"\x8c(.)([A-Za-z_][\w.]{0,80})\x94?\x8c(.)([A-Za-z_][\w.]{0,80})\x94?\x93", re.S)


def _raw_globals(data: bytes) -> list[str]:
    """``"from <module> import <name>"`` for each ``GLOBAL`` (``c<module>\\n<name>\\n``) or
    ``STACK_GLOBAL`` (two short strings, optionally memoized, then ``\\x93``) found anywhere in
    ``data`` whose module is on fickling's unsafe list (safe builtins and joblib's array wrapper
    excepted)."""
    from fickling.fickle import BUILTIN_MODULE_NAMES, SAFE_BUILTINS, UNSAFE_IMPORTS

    pairs = {(m.group(1), m.group(2)) for m in GLOBAL_RE.finditer(data)}
    pairs |= {(m.group(2), m.group(4)) for m in STACK_GLOBAL_RE.finditer(data)
              if m.group(1)[0] == len(m.group(2)) and m.group(3)[0] == len(m.group(4))}
    hits = set()
    for module_b, name_b in pairs:
        module, name = module_b.decode(), name_b.decode()
        trigger = f"from {module} import {name}"
        if module.split(".")[0] not in UNSAFE_IMPORTS or trigger in BENIGN_TRIGGERS:
            continue
        if module in BUILTIN_MODULE_NAMES and name in SAFE_BUILTINS:
            continue
        hits.add(trigger)
    return sorted(hits)


def scan_pickle_bytes(data: bytes, label: str) -> list[Finding]:
    """Findings for one pickle stream (``label`` names it in the findings: a file or ``zip!entry``)."""
    from fickling.analysis import Severity, check_safety
    from fickling.fickle import StackedPickle

    findings: list[Finding] = []
    try:
        stacked = StackedPickle.load(io.BytesIO(data), fail_on_decode_error=False)
    except Exception as exc:  # fickling raises its own errors on garbage
        findings.append(Finding("pickle-global", "undecodable pickle", label, str(exc).splitlines()[0][:120]))
        stacked = []
    for pickled in stacked:
        for result in check_safety(pickled).results:
            if result.severity >= Severity.LIKELY_OVERTLY_MALICIOUS and result.trigger not in BENIGN_TRIGGERS:
                findings.append(Finding("pickle-global", result.trigger or str(result)[:80], label,
                                        f"fickling {result.analysis_name}: {str(result)[:160]}"))
    reported = {f.name for f in findings}
    findings += [Finding("pickle-global", trigger, label, "GLOBAL found in the raw bytes")
                 for trigger in _raw_globals(data) if trigger not in reported]
    return findings


def scan_pickle_file(path: Path) -> tuple[list[str], list[Finding]]:
    """(entries checked, findings) for a raw pickle file or a zip archive (torch.save, TorchScript,
    torch.export) whose ``*.pkl`` entries are pickles."""
    if zipfile.is_zipfile(path):
        checked, findings = [], []
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(PICKLE_ENTRY_SUFFIXES):
                    label = f"{path}!{name}"
                    checked.append(label)
                    findings += scan_pickle_bytes(archive.read(name), label)
        return checked, findings
    return [str(path)], scan_pickle_bytes(path.read_bytes(), str(path))
