"""Summaries: JUnit one suite per item / one case per gate, markdown, summary.json, schedulability."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from optkit.batch.outcome import ItemOutcome
from optkit.batch.plan import ResolvedItem, TargetConfig
from optkit.batch.run import PlanOutcome
from optkit.batch.runner_ray import check_schedulable
from optkit.batch.summary import summary_markdown, write_summaries
from optkit.errors import PlanError
from optkit.validation.gates import GateResult


def _gate(name: str, status: str) -> GateResult:
    return GateResult(name, "accuracy", "cosine_min", ">=", 0.99, 0.5 if status == "failed" else 1.0, status)


def _plan() -> PlanOutcome:
    return PlanOutcome(
        items=[
            ItemOutcome("a", "approved", "/o/a", 2.0, [_gate("g1", "passed"), _gate("g2", "passed")], recipe="fp32"),
            ItemOutcome("b", "rejected", "/o/b", 3.0, [_gate("g1", "failed")], exit_code=1, recipe="fp32"),
            ItemOutcome("c", "error", "/o/c", 1.0, error="data error: bad | input", exit_code=2, recipe="fp32"),
            ItemOutcome("d", "skipped", "/o/d", recipe="fp32"),
            ItemOutcome("e", "cancelled", "/o/e", recipe="fp32"),
        ],
        runner="local, --jobs 1",
        seconds=6.0,
    )


def test_summaries_one_suite_per_item_and_a_verdict(tmp_path):
    plan = _plan()
    assert not plan.approved
    write_summaries(plan, tmp_path)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root}
    assert list(suites) == ["optkit a", "optkit b", "optkit c", "optkit d", "optkit e"]
    assert [c.get("name") for c in suites["optkit a"]] == ["g1", "g2"]
    assert suites["optkit b"].find("testcase/failure") is not None
    assert suites["optkit c"].find("testcase/error").get("message") == "data error: bad | input"
    assert suites["optkit e"].find("testcase/skipped") is not None
    assert root.get("failures") == "1" and root.get("errors") == "1" and root.get("tests") == "6"
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["approved"] is False and data["counts"]["approved"] == 1
    md = (tmp_path / "summary.md").read_text()
    assert "NOT all items approved" in md and "bad \\| input" in md  # a pipe cannot break the table


def test_all_approved_or_up_to_date_is_approved():
    plan = PlanOutcome(items=[ItemOutcome("a", "approved", "/o"), ItemOutcome("b", "skipped", "/p")])
    assert plan.approved and "all items approved" in summary_markdown(plan)
    assert not PlanOutcome().approved  # no items: nothing was approved


def _item(target: TargetConfig | None) -> ResolvedItem:
    return ResolvedItem("x", None, target)  # type: ignore[arg-type]  # the request is not read here


NODES = [
    {"Alive": True, "Resources": {"CPU": 2.0, "node:10.0.0.1": 1.0}},
    {"Alive": False, "Resources": {"CPU": 8.0, "avx512_vnni": 1.0}},
]


def test_a_target_no_alive_node_has_is_refused_at_once():
    check_schedulable([_item(None), _item(TargetConfig(num_cpus=2))], NODES)
    for target in (
        TargetConfig(resources={"avx512_vnni": 1}),  # only on a dead node
        TargetConfig(num_cpus=4),
        TargetConfig(accelerator_type="A100"),
    ):
        with pytest.raises(PlanError, match="no node of the Ray cluster") as caught:
            check_schedulable([_item(target)], NODES)
        assert caught.value.exit_code == 2
