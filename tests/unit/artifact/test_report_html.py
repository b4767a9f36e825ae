"""report.html (in every artifact and under --report-dir), optkit report, --summary-md, and the
figures the page plots (error histograms, tag flips, per-entity F1)."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from optkit.artifact.verify import read_manifest, verify_artifact
from optkit.cli.app import app
from optkit.records.manifest import Manifest, TagFlip
from optkit.reporting.html import render_html
from optkit.validation.accuracy import ERROR_BIN_EDGES, error_histogram, tag_flips
from optkit.validation.ner import entity_f1_by_type

runner = CliRunner()
MAX_BYTES = 3_000_000


def test_approved_artifact_holds_a_hashed_self_contained_page(report_runs):
    folder = report_runs["ok"]
    page = (folder / "report.html").read_text(encoding="utf-8")
    manifest, _ = read_manifest(folder)
    assert "report.html" in manifest.files and manifest.files["report.html"].bytes == len(page.encode())
    assert verify_artifact(folder).ok
    assert len(page.encode()) < MAX_BYTES
    for plot in ("latency", "throughput", "search-1", "errors-1", "entity-f1"):
        assert f'data-plot="{plot}"' in page, plot
    assert "APPROVED" in page and "tag_agreement &gt;= 0.99" in page
    assert "<script" not in page and "<link" not in page and 'src="' not in page  # nothing to fetch
    assert "model.onnx" in page and manifest.files["model.onnx"].sha256 in page
    assert (report_runs["ok_reports"] / "report.html").read_bytes() == page.encode()


def test_optkit_report_reproduces_the_page_byte_for_byte(report_runs, tmp_path):
    folder = report_runs["ok"]
    out = tmp_path / "x.html"
    result = runner.invoke(app, ["report", str(folder), "-o", str(out), "--check"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (folder / "report.html").read_bytes()
    stdout = runner.invoke(app, ["report", str(folder)])
    assert stdout.exit_code == 0 and stdout.stdout == out.read_text(encoding="utf-8")
    checked = runner.invoke(app, ["report", str(folder), "--check"])  # compares only: no page on stdout
    assert checked.exit_code == 0 and checked.stdout == "" and "identical" in checked.stderr


def test_optkit_report_on_an_artifact_without_a_page_or_a_changed_one(report_runs, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_bytes((report_runs["ok"] / "manifest.json").read_bytes())
    missing = runner.invoke(app, ["report", str(old), "--check", "-o", str(tmp_path / "new.html")])
    assert missing.exit_code == 1 and (tmp_path / "new.html").is_file()
    (old / "report.html").write_text("<p>edited</p>")
    changed = runner.invoke(app, ["report", str(old), "--check", "-o", str(tmp_path / "new.html")])
    assert changed.exit_code == 1 and (old / "report.html").read_text() == "<p>edited</p>"  # never rewritten


def test_optkit_report_refuses_a_folder_without_a_manifest(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "manifest.json" in result.output


def test_rejected_run_writes_its_page_and_summary_under_report_dir(report_runs):
    assert not report_runs["bad"].exists()
    page = (report_runs["bad_reports"] / "report.html").read_text(encoding="utf-8")
    assert "NOT APPROVED" in page and 'class="bad"' in page and "cosine_min &gt;= 1.5" in page
    assert "No artifact was written" in page and 'data-plot="latency"' in page
    assert (report_runs["bad_reports"] / "report.md").read_text().startswith("# optkit report: NOT APPROVED")
    summary = report_runs["bad_summary"].read_text()
    assert "NOT APPROVED" in summary and "| cosine_min >= 1.5 |" in summary and "No artifact written" in summary
    assert str(report_runs["bad_reports"] / "report.html") in summary


def test_approved_summary_has_verdict_gates_speed_and_artifact(report_runs):
    summary = report_runs["ok_summary"].read_text()
    assert summary.startswith("### optkit `ner-int8`: ✅ APPROVED")
    assert "| tag_agreement >= 0.99 | tag_agreement >= 0.99 |" in summary
    assert "**Speed**" in summary and "cpu 1×16" in summary
    assert f"Artifact: `{report_runs['ok']}`" in summary


def test_page_and_summary_show_the_real_workloads(report_runs):
    """ner-int8 scans up to batch 16: the page has the real-length table, the scan plot and table,
    and each runner's peak memory; the summary a line of them; a hostile scope string is escaped."""
    manifest, _ = read_manifest(report_runs["ok"])
    page = (report_runs["ok"] / "report.html").read_text(encoding="utf-8")
    assert 'id="workloads"' in page and 'data-plot="scan"' in page and "best batch size <strong>" in page
    assert "peak memory of its own process (MB)" in page and "<td>source</td>" in page and "<td>artifact</td>" in page
    assert manifest.speed is not None and [r.batch_size for r in manifest.speed.real_length] == [1, 2]
    summary = report_runs["ok_summary"].read_text()
    assert (
        "**Real workloads**: batch 1 " in summary and "best batch size" in summary and "peak memory source" in summary
    )
    data = json.loads(manifest.model_dump_json())
    data["speed"]["peak_memory"]["artifact"]["scope"] = "<script>x()</script>"
    data["speed"]["batch_scan"]["stopped"] = "<img src=x>"
    hostile = render_html(Manifest.model_validate(data))
    assert "<script" not in hostile and "<img" not in hostile and "&lt;script&gt;x()" in hostile


def test_render_is_deterministic_and_escapes_hostile_names(report_runs):
    manifest, _ = read_manifest(report_runs["ok"])
    assert render_html(manifest) == render_html(manifest)  # Matplotlib ids from a fixed salt
    hostile = "<script>alert(1)</script>"
    data = json.loads(manifest.model_dump_json())
    data["source"]["path"] = hostile
    data["gates"][0]["name"] = '<img src=x onerror="alert(2)">'
    data["accuracy"]["tag_flips"] = [
        TagFlip(source="--></svg><script>x()</script>", artifact="O", count=2).model_dump()
    ]
    page = render_html(Manifest.model_validate(data))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and 'data-plot="flips"' in page


def test_page_ignores_its_own_hash_and_the_digest(report_runs):
    manifest, _ = read_manifest(report_runs["ok"])
    other = manifest.model_copy(
        update={"digest": "f" * 64, "files": {**manifest.files, "report.html": manifest.files["model.onnx"]}}
    )
    assert render_html(other) == render_html(manifest)


def test_report_dir_that_is_a_file_and_summary_in_a_missing_folder_exit_2_before_the_run(tiny, tmp_path):
    (tmp_path / "file").write_text("x")
    as_file = runner.invoke(app, ["convert", str(tiny["pt"]), "--report-dir", str(tmp_path / "file")])
    assert as_file.exit_code == 2 and "--report-dir" in as_file.output and "not a folder" in as_file.output
    missing = runner.invoke(app, ["convert", str(tiny["pt"]), "--summary-md", str(tmp_path / "no" / "s.md")])
    assert missing.exit_code == 2 and "--summary-md" in missing.output
    assert not (tmp_path / "optkit-out").exists()


def test_error_histogram_bins_zero_tiny_huge_inf_and_drops_nan():
    hist = error_histogram(np.array([0.0, 2e-10, 1e-9, 0.5, 1e6, np.inf, np.nan]))
    counts = hist["counts"]
    assert hist["edges"] == ERROR_BIN_EDGES and len(counts) == len(ERROR_BIN_EDGES) - 1
    assert sum(counts) == 6 and counts[0] == 2  # 0 and 2e-10 below the first half decade
    assert counts[1] == 1 and counts[-1] == 2  # 1e-9; 1e6 and inf in the last bin
    assert counts[ERROR_BIN_EDGES.index(10**-0.5)] == 1  # 0.5 in [10^-0.5, 1)


def test_tag_flips_count_real_tokens_only_and_name_tags():
    src = np.zeros((1, 3, 3))
    art = np.zeros((1, 3, 3))
    src[0, :, 1] = 1  # source predicts B-PER everywhere
    art[0, 0, 1] = art[0, 1, 2] = art[0, 2, 2] = 1  # artifact flips tokens 1 and 2 to I-PER
    mask = np.array([[1, 1, 0]])  # token 2 is padding
    assert tag_flips(src, art, mask, ["O", "B-PER", "I-PER"]) == [{"source": "B-PER", "artifact": "I-PER", "count": 1}]
    assert tag_flips(src, art, None, None) == [{"source": "1", "artifact": "2", "count": 2}]
    assert tag_flips(src[0], art[0], None, None) == []  # not (N, L, tags)


def test_entity_f1_by_type():
    gold = [["B-PER", "O", "B-LOC"]]
    scores = entity_f1_by_type(gold, [["B-PER", "O", "O"]])
    assert scores == {"LOC": (0.0, 1), "PER": (1.0, 1)}


def test_convert_result_repr_and_notebook_html(tiny, tmp_path):
    import optkit

    result = optkit.convert(
        tiny["pt"],
        "fp32",
        output=tmp_path / "o",
        data=str(tiny["conll"]),
        overrides={
            "benchmark.batch_sizes": [1],
            "benchmark.sequence_lengths": [16],
            "benchmark.iterations": 3,
            "benchmark.warmup": 1,
            "benchmark.gates": [],
            "validation.gates": [{"metric": "cosine_min", "min": 1.5}],
        },
    )
    text = repr(result)
    assert text.startswith("ConvertResult(NOT APPROVED, recipe='fp32'") and "blocking: cosine_min >= 1.5" in text
    assert len(text) < 400 and "output_dir=None" in text
    fragment = result._repr_html_()
    assert fragment.startswith('<div class="optkit-report">') and "<html" not in fragment
    assert "NOT APPROVED" in fragment and 'data-plot="latency"' in fragment and "cosine_min &gt;= 1.5" in fragment


def test_a_contended_shape_is_marked_inconclusive_in_the_page_the_summary_and_report_md(report_runs):
    """A shape timed while other processes took the spare cores decides nothing: its interval is
    shown with CONTENDED_MARK wherever it is shown (issue 12: an interval that may miss the quiet
    figure must say it is inconclusive)."""
    from types import SimpleNamespace

    from optkit.artifact.report import _interval
    from optkit.records.manifest import CONTENDED_MARK
    from optkit.reporting.summary import render_summary

    manifest, _ = read_manifest(report_runs["ok"])
    assert CONTENDED_MARK not in render_html(manifest) or manifest.speed.shapes[0].contended
    data = json.loads(manifest.model_dump_json())
    data["speed"]["shapes"][0]["contended"] = True
    busy = Manifest.model_validate(data)
    assert f"({CONTENDED_MARK})" in render_html(busy)
    assert CONTENDED_MARK in render_summary(busy, "out")
    estimate = SimpleNamespace(ci_low=1.5, ci_high=2.0)
    assert _interval(SimpleNamespace(estimate=estimate, contended=True)) == f"[1.50, 2.00] ({CONTENDED_MARK})"
    assert _interval(SimpleNamespace(estimate=estimate, contended=False)) == "[1.50, 2.00]"
