"""JUnit XML for CI systems: one test case per gate (failed or inconclusive → ``<failure>``, skipped →
``<skipped>``),
the format GitHub Actions, GitLab and Jenkins test reporters read.

:func:`check_junit_path` runs before the conversion, so an unwritable ``--junit-xml`` (a folder, a
path under a missing or read-only folder) stops the run at once; :func:`write_junit` writes the file
atomically (temporary sibling renamed into place).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from optkit.paths import check_writable_file, write_atomic
from optkit.validation.gates import GateResult

FLAG = "--junit-xml"


def check_junit_path(path: str | Path) -> Path:
    """Check, before any work, that the JUnit report ``path`` can be written at the end.

    Raises:
        OutputError: ``path`` is a folder or another non-regular file, its folder is missing, or
            that folder does not accept a new file (read-only, permissions).
    """
    return check_writable_file(path, FLAG)


def junit_xml(suite: str, gates: list[GateResult], strict: bool) -> bytes:
    """The JUnit XML document (UTF-8 bytes) with one ``<testcase>`` per gate of recipe ``suite``;
    ``strict`` reports skipped gates as failures; an inconclusive speed gate is a failure in both
    modes (it did not pass), its message says ``inconclusive``."""
    failures = sum(g.blocks(strict) for g in gates)
    skipped = sum(g.status == "skipped" and not strict for g in gates)
    root = ET.Element(
        "testsuite",
        name=f"optkit {suite}",
        tests=str(len(gates)),
        failures=str(failures),
        skipped=str(skipped),
        errors="0",
    )
    for gate in gates:
        case = ET.SubElement(root, "testcase", classname=f"optkit.{suite}.{gate.kind}", name=gate.name)
        value = "not measured" if gate.value is None else f"{gate.value:.6g}"
        detail = f"measured {value}, required {gate.op} {gate.threshold:g}" + (
            f"; {gate.reason}" if gate.reason else ""
        )
        if gate.blocks(strict):
            ET.SubElement(case, "failure", message=detail, type=gate.status)
        elif gate.status == "skipped":
            ET.SubElement(case, "skipped", message=detail)
        else:
            ET.SubElement(case, "system-out").text = detail
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_junit(path: Path, suite: str, gates: list[GateResult], strict: bool) -> None:
    """Write ``path`` (atomically) with one ``<testcase>`` per gate; ``strict`` reports skipped
    gates as failures. The folder of ``path`` must exist (see :func:`check_junit_path`).

    Raises:
        OutputError: the file cannot be written (named, in one line); ``path`` is then unchanged.
    """
    write_atomic(path, junit_xml(suite, gates, strict), FLAG)
