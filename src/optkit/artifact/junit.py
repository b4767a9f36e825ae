"""JUnit XML for CI systems: one test case per gate (failed → ``<failure>``, skipped → ``<skipped>``),
the format GitHub Actions, GitLab and Jenkins test reporters read."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from optkit.validation.gates import GateResult


def write_junit(path: Path, suite: str, gates: list[GateResult], strict: bool) -> None:
    """Write ``path`` with one ``<testcase>`` per gate; ``strict`` reports skipped gates as failures."""
    failures = sum(g.status == "failed" or (strict and g.status == "skipped") for g in gates)
    skipped = sum(g.status == "skipped" and not strict for g in gates)
    root = ET.Element("testsuite", name=f"optkit {suite}", tests=str(len(gates)), failures=str(failures),
                      skipped=str(skipped), errors="0")
    for gate in gates:
        case = ET.SubElement(root, "testcase", classname=f"optkit.{suite}.{gate.kind}", name=gate.name)
        value = "not measured" if gate.value is None else f"{gate.value:.6g}"
        detail = f"measured {value}, required {gate.op} {gate.threshold:g}" + (f"; {gate.reason}" if gate.reason else "")
        if gate.status == "failed" or (strict and gate.status == "skipped"):
            ET.SubElement(case, "failure", message=detail)
        elif gate.status == "skipped":
            ET.SubElement(case, "skipped", message=detail)
        else:
            ET.SubElement(case, "system-out").text = detail
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
