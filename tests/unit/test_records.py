"""Typed records: the search report and the manifest round-trip through JSON, reject what the
search never writes, keep manifest.json's keys, and `optkit manifest schema` prints the schema a
real manifest validates against."""

from __future__ import annotations

import json
import warnings

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import optkit
from optkit.artifact.manifest import Manifest, search_summary
from optkit.cli.app import app
from optkit.errors import OptkitError
from optkit.records.manifest import SandboxSection, StepDetails
from optkit.records.search import Candidate, SearchReport
from optkit.results import EventProgress, NullProgress, Progress, StepRecord
from tests_support import FAST, blank_sections

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
    "metrics": {"cosine_min": 0.99, "max_rel_error": None},
    "gates": [{"name": "cosine_min >= 0.98", "value": 0.99, "status": "passed"}],
    "passed": True,
    "margin": 0.5,
    "latency_ms": 1.5,
    "best_ms": 1.2,
    "size_mb": 0.1,
    "seconds": 0.25,
    "error": None,
    "verdict": "chosen",
    "quantizer": "dynamic",
    "calibrate_method": None,
    "calibration": None,
    "smooth_alpha": None,
    "smooth_mode": None,
    "speedup": None,
    "activations": None,
    "family": "dynamic",
}
REFERENCE = {
    **ROW,
    "id": 0,
    "stage": "fp32 input",
    "settings": "fp32 (no quantization)",
    "verdict": "reference",
    "quantizer": None,
}


def report(**changes) -> SearchReport:
    fields = {
        "strategy": "accuracy-aware",
        "candidates": [REFERENCE, ROW],
        "chosen": 1,
        "met_gates": True,
        "fp32_nodes": [],
        "budget_s": 600.0,
        "budget_exhausted": False,
        "elapsed_s": 3.5,
        "latency_shape": "1×16",
        "sensitivity": [{"node": "/MatMul", "op_type": "MatMul", "error": 0.01, "method": "output"}],
    }
    return SearchReport.model_validate({**fields, **changes})


def test_search_report_round_trips_through_json():
    first = report()
    again = SearchReport.model_validate_json(first.model_dump_json())
    assert again == first and again.chosen_candidate.verdict == "chosen" and again.tried == 1
    assert list(json.loads(first.model_dump_json())["candidates"][1]) == list(ROW)  # the manifest's key order


@pytest.mark.parametrize(
    ("key", "value"),
    [("verdict", "maybe"), ("stage", "random"), ("gates", [{"name": "g", "value": 1, "status": "ok"}])],
)
def test_a_candidate_rejects_a_value_the_search_never_writes(key, value):
    with pytest.raises(ValidationError, match=key):
        Candidate.model_validate({**ROW, key: value})


def test_a_candidate_rejects_an_unknown_key():
    with pytest.raises(ValidationError, match="extra"):
        Candidate.model_validate({**ROW, "path": "/tmp/c01.onnx"})


def test_a_report_naming_no_chosen_candidate_is_an_error():
    with pytest.raises(ValueError, match="no candidate 7"):
        _ = report(chosen=7).chosen_candidate


def test_step_details_keep_their_figures_and_write_the_search_last():
    details = StepDetails.model_validate({"weight_type": "qint8", "candidates": 1, "search": report()})
    dumped = json.loads(details.model_dump_json())
    assert list(dumped) == ["weight_type", "candidates", "search"]
    assert details.figures == {"weight_type": "qint8", "candidates": 1}
    assert "search" not in json.loads(StepDetails.model_validate({"nodes": 3}).model_dump_json())


def test_search_summary_reads_the_chosen_row():
    step = StepRecord("quantize-dynamic", 2.0, {"candidates": 1}, search=report())
    summary = search_summary(step)
    assert (summary.step, summary.candidates, summary.settings) == ("quantize-dynamic", 1, "qint8 per-channel")
    with pytest.raises(ValueError, match="ran no search"):
        search_summary(StepRecord("fuse", 1.0))


def test_sandbox_section_writes_what_the_worker_reported_status_last():
    off = SandboxSection.model_validate({"reason": "OPTKIT_SANDBOX=off", "status": "off"})
    assert off.model_dump_json() == '{"reason":"OPTKIT_SANDBOX=off","status":"off"}'
    newer = SandboxSection.model_validate({"abi": 6, "status": "confined", "future_key": [1]})
    assert list(json.loads(newer.model_dump_json())) == ["abi", "future_key", "status"]
    with pytest.raises(ValidationError):
        SandboxSection.model_validate({"status": "half-confined"})


def test_manifest_from_before_the_sandbox_reads_as_unrecorded():
    manifest = Manifest(
        approved=True, strict=False, files={}, steps=[], speed=None, gates=[], warnings=[], **blank_sections()
    )
    data = json.loads(manifest.model_dump_json())
    data["sandbox"] = {}
    assert Manifest.model_validate(data).sandbox is None
    data["evidence"] = "some-inputs"
    with pytest.raises(ValidationError, match="evidence"):
        Manifest.model_validate(data)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def step_started(self, name: str) -> None:
        self.events.append(("step", name))

    def step_done(self, record: StepRecord) -> None:
        self.events.append(("step_done", record))

    def shape_measured(self, shape) -> None:
        self.events.append(("shape", shape))

    def message(self, text: str) -> None:
        self.events.append(("progress", text))


def test_event_progress_forwards_to_an_old_callback_and_warns():
    seen: list[tuple[str, object]] = []
    with pytest.warns(DeprecationWarning, match="on_event"):
        progress: Progress = EventProgress(lambda kind, payload: seen.append((kind, payload)))
    record = StepRecord("export", 1.0)
    progress.step_started("export")
    progress.step_done(record)
    progress.message("candidate 1")
    assert seen == [("step", "export"), ("step_done", record), ("progress", "candidate 1")]
    NullProgress().step_done(record)  # accepts every event, does nothing


def test_convert_still_accepts_on_event_with_a_deprecation_warning(tmp_path):
    with warnings.catch_warnings(record=True) as caught, pytest.raises(OptkitError):
        warnings.simplefilter("always")
        optkit.convert(tmp_path / "missing.pt", "fp32", tmp_path / "o", on_event=lambda kind, payload: None)
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_manifest_schema_command_prints_the_schema():
    result = CliRunner().invoke(app, ["manifest", "schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["title"] == "Manifest"
    assert {"approved", "source", "gates", "sandbox", "search"} <= set(schema["properties"])


@pytest.fixture(scope="module")
def converted(tiny_sklearn, tmp_path_factory):
    recorder = Recorder()
    out = tmp_path_factory.mktemp("records") / "o"
    result = optkit.convert(
        tiny_sklearn["onnx"], "sklearn-fp32", out, data=str(tiny_sklearn["npz"]), overrides=FAST, progress=recorder
    )
    return result, out, recorder


def test_a_real_manifest_validates_against_the_schema(converted):
    result, out, _ = converted
    text = (out / "manifest.json").read_text()
    manifest = Manifest.model_validate_json(text)
    assert manifest == result.manifest and manifest.source.sha256 == result.source.sha256
    schema = Manifest.model_json_schema()
    data = json.loads(text)
    assert set(schema["required"]) <= set(data) <= set(schema["properties"])
    assert text == manifest.model_dump_json(indent=2) + "\n"  # parsed and written again: the same bytes


def test_progress_hears_every_step_in_order(converted):
    result, _, recorder = converted
    started = [name for kind, name in recorder.events if kind == "step"]
    done = [record for kind, record in recorder.events if kind == "step_done"]
    assert started == [s.name for s in result.steps] and done == result.steps
    assert any(kind == "shape" for kind, _ in recorder.events)
