"""The int8 search's candidate table with each ranked candidate's speed-up interval: report.md and
terminal rows from a hand-made report, report.html and manifest.json from a real ``ner-int8`` run
(the tiny BERT of the shared fixtures), whose ranking timed real ONNX Runtime sessions."""

from __future__ import annotations

import json

from optkit.artifact.report import (
    SEARCH_COLUMNS,
    SEARCH_CONSOLE_COLUMNS,
    chosen_family,
    ranking_text,
    search_console_rows,
    search_rows,
)
from optkit.records.search import Candidate, Ranking, SearchReport, SpeedupInterval

ROW = {
    "id": 1,
    "stage": "settings",
    "settings": "qint8 per-channel",
    "weight_type": "qint8",
    "per_channel": True,
    "reduce_range": False,
    "op_types": None,
    "fp32_nodes": [],
    "quantized_ops": {"MatMulInteger": 2},
    "metrics": {"cosine_min": 0.99},
    "gates": [{"name": "cosine_min >= 0.98", "value": 0.99, "status": "passed"}],
    "passed": True,
    "margin": 0.5,
    "latency_ms": 1.5,
    "best_ms": 1.2,
    "size_mb": 0.1,
    "seconds": 0.25,
    "error": None,
    "verdict": "passed",
}


def _report() -> SearchReport:
    ref = Candidate.model_validate({**ROW, "id": 0, "stage": "fp32 input", "weight_type": None, "verdict": "reference"})
    tied = SpeedupInterval(ratio=1.85, ci_low=1.7, ci_high=2.013, rounds=5, p50_ms=1.5, near_tie=True)
    slow = SpeedupInterval(ratio=1.2, ci_low=1.1, ci_high=1.3, rounds=5, p50_ms=2.3, near_tie=False)
    rows = [
        ref,
        Candidate.model_validate({**ROW, "speedup": tied, "verdict": "chosen"}),
        Candidate.model_validate({**ROW, "id": 2, "speedup": slow}),
        Candidate.model_validate({**ROW, "id": 3, "passed": False, "verdict": "failed"}),
    ]
    ranking = Ranking(reference=0, rounds=5, calls_per_block=15, fastest=1, tied=[1], timed=[1, 2], rule="the rule")
    return SearchReport(
        strategy="accuracy-aware",
        candidates=rows,
        chosen=1,
        met_gates=True,
        fp32_nodes=[],
        budget_s=600.0,
        budget_exhausted=False,
        elapsed_s=3.0,
        latency_shape="1×128",
        ranking=ranking,
    )


def test_every_table_shows_the_interval_of_each_ranked_candidate_and_marks_the_near_tie():
    report = _report()
    markdown = [dict(zip(SEARCH_COLUMNS, row, strict=True)) for row in search_rows(report)]
    console = [dict(zip(SEARCH_CONSOLE_COLUMNS, row, strict=True)) for row in search_console_rows(report)]
    for rows, column in ((markdown, "speed-up vs fp32 [95 % CI]"), (console, "speed-up [95 % CI]")):
        assert [r[column] for r in rows] == ["—", "1.85× [1.70, 2.01] ≈", "1.20× [1.10, 1.30]", "—"]
    text = ranking_text(report)
    assert "candidates 1, 2 were timed with candidate 0 in 5 alternating rounds of 15 calls" in text
    assert "fastest: 1" in text and "Rule: the rule." in text


def test_a_report_from_before_the_ranking_still_reads_and_shows_no_interval():
    old = json.loads(_report().model_dump_json())
    del old["ranking"]
    for row in old["candidates"]:
        del row["speedup"]
    report = SearchReport.model_validate(old)
    assert report.ranking is None and ranking_text(report) == ""
    assert {row[-2] for row in search_console_rows(report)} == {"—"}


def test_every_table_shows_each_candidates_family_and_a_report_from_before_families_still_reads():
    report = _report()
    rows = [r.model_copy(update={"family": f}) for r, f in zip(report.candidates, FAMILIES, strict=True)]
    report = report.model_copy(update={"candidates": rows})
    markdown = [dict(zip(SEARCH_COLUMNS, row, strict=True)) for row in search_rows(report)]
    console = [dict(zip(SEARCH_CONSOLE_COLUMNS, row, strict=True)) for row in search_console_rows(report)]
    for table in (markdown, console):
        assert [r["family"] for r in table] == FAMILIES
    assert chosen_family(report) == "dynamic+smooth α=0.5"
    old = json.loads(_report().model_dump_json())
    for row in old["candidates"]:
        del row["family"]
    report = SearchReport.model_validate(old)
    assert {r[2] for r in search_rows(report)} == {"—"} and chosen_family(report) == "—"


FAMILIES = ["fp32 input", "dynamic+smooth α=0.5", "static minmax", "dynamic, fp32 fallback"]


def test_the_real_run_records_the_chosen_interval_and_the_page_shows_it(report_runs):
    folder = report_runs["ok"]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    (search,) = [s["details"]["search"] for s in manifest["steps"] if "search" in s["details"]]
    chosen = next(c for c in search["candidates"] if c["id"] == search["chosen"])
    found = chosen["speedup"]
    assert found is not None and found["rounds"] == 5 and found["near_tie"] is True
    assert 0 < found["ci_low"] <= found["ratio"] <= found["ci_high"]
    assert search["ranking"]["reference"] == 0 and search["chosen"] in search["ranking"]["tied"]
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "speed-up vs fp32 [95 % CI]" in page and f"{found['ratio']:.2f}× [" in page
    assert 'id="ranking-1"' in page
    assert "<th>family</th>" in page and f"<td>{chosen['family']}</td>" in page
