"""JUnit XML for CI systems: one test case per gate (failed or inconclusive → ``<failure>``, skipped →
``<skipped>``),
the format GitHub Actions, GitLab and Jenkins test reporters read.

:func:`check_junit_path` runs before the conversion, so an unwritable ``--junit-xml`` (a folder, a
path under a missing or read-only folder) stops the run at once; :func:`write_junit` writes the file
atomically (temporary sibling renamed into place).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
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


def _suite(suite: str, gates: list[GateResult], strict: bool, name: str | None = None) -> ET.Element:
    """One ``<testsuite>`` element: a ``<testcase>`` per gate of recipe ``suite`` (see :func:`junit_xml`)."""
    failures = sum(g.blocks(strict) for g in gates)
    skipped = sum(g.status == "skipped" and not strict for g in gates)
    root = ET.Element(
        "testsuite",
        name=name or f"optkit {suite}",
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
    return root


def junit_xml(suite: str, gates: list[GateResult], strict: bool) -> bytes:
    """The JUnit XML document (UTF-8 bytes) with one ``<testcase>`` per gate of recipe ``suite``;
    ``strict`` reports skipped gates as failures; an inconclusive speed gate is a failure in both
    modes (it did not pass), its message says ``inconclusive``."""
    return ET.tostring(_suite(suite, gates, strict), encoding="utf-8", xml_declaration=True)


@dataclass
class JunitSuite:
    """One plan item's suite for :func:`junit_suites_xml`.

    Attributes:
        name: the item's name (the suite is ``optkit <name>``).
        recipe: the recipe's name (the cases' class names, as ``optkit convert`` writes them).
        gates: its gates (one case each).
        strict: skipped gates fail.
        error: why the item produced no verdict (an ``<error>`` case), or None.
        note: a line for an item that did not run (up to date: a passing case; cancelled: a skipped
            case), or None.
        status: the item's status (``skipped`` = up to date, ``cancelled`` = not run).
    """

    name: str
    recipe: str
    gates: list[GateResult] = field(default_factory=list)
    strict: bool = False
    error: str | None = None
    note: str | None = None
    status: str = ""


def junit_suites_xml(suites: list[JunitSuite]) -> bytes:
    """A ``<testsuites>`` document with one ``<testsuite>`` per plan item and one ``<testcase>`` per
    gate (an item that failed before its gates: one ``<error>`` case; up to date: one passing
    ``artifact`` case; cancelled: one ``<skipped>`` case)."""
    root = ET.Element("testsuites", name="optkit batch")
    for spec in suites:
        element = _suite(spec.recipe, spec.gates, spec.strict, name=f"optkit {spec.name}")
        if spec.error is not None or spec.note is not None:
            case = ET.SubElement(element, "testcase", classname=f"optkit.{spec.recipe}.artifact", name=spec.name)
            element.set("tests", str(int(element.get("tests", "0")) + 1))
            if spec.error is not None:
                ET.SubElement(case, "error", message=spec.error, type="error")
                element.set("errors", "1")
            elif spec.status == "cancelled":
                ET.SubElement(case, "skipped", message=spec.note or "")
                element.set("skipped", str(int(element.get("skipped", "0")) + 1))
            else:
                ET.SubElement(case, "system-out").text = spec.note
        root.append(element)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_junit_suites(path: Path, suites: list[JunitSuite]) -> None:
    """Write ``path`` (atomically) with :func:`junit_suites_xml`.

    Raises:
        OutputError: the file cannot be written; ``path`` is then unchanged.
    """
    write_atomic(path, junit_suites_xml(suites), FLAG)


def write_junit(path: Path, suite: str, gates: list[GateResult], strict: bool) -> None:
    """Write ``path`` (atomically) with one ``<testcase>`` per gate; ``strict`` reports skipped
    gates as failures. The folder of ``path`` must exist (see :func:`check_junit_path`).

    Raises:
        OutputError: the file cannot be written (named, in one line); ``path`` is then unchanged.
    """
    write_atomic(path, junit_xml(suite, gates, strict), FLAG)
