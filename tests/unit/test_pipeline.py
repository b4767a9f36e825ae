"""The whole pipeline on the tiny model through the Python API (``optkit.convert``)."""

from __future__ import annotations

import json

import pytest

import optkit
from optkit.artifact.manifest import sha256_file
from optkit.errors import GateFailed, OutputError
from tests_support import FAST, NER_INT8_FIXED


@pytest.fixture
def approved(tiny_ner_int8):
    """The session's shared ner-int8 conversion (tests/conftest.py: verify and revalidate read it too)."""
    return tiny_ner_int8


def test_approved_artifact_has_model_manifest_report(approved):
    result, out = approved
    assert result.approved and result.output_dir == out
    assert sorted(p.name for p in out.iterdir()) == [
        "attestation.intoto.json",
        "manifest.json",
        "model.onnx",
        "report.html",
        "report.md",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["approved"] is True
    for name, entry in manifest["files"].items():
        assert sha256_file(out / name) == entry["sha256"]
    assert set(manifest["files"]) == {"attestation.intoto.json", "model.onnx", "report.html", "report.md"}
    assert len(manifest["source"]["sha256"]) == 64 and manifest["recipe"]["name"] == "ner-int8"
    assert manifest["recipe"]["resolved"]["benchmark"]["iterations"] == 3  # overrides are recorded
    assert manifest["artifact"]["execution_provider"] == "CPUExecutionProvider"
    assert manifest["artifact"]["opset"]["ai.onnx"] == 17
    assert "avx2" in manifest["environment"]["cpu"]["flags"]
    assert {"onnx", "onnxruntime", "torch", "optkit"} <= set(manifest["environment"]["packages"])
    assert manifest["data"]["kind"] == "conll" and manifest["data"]["sha256"]


def test_speed_is_timed_in_rounds_and_recorded_with_its_interval_and_noise(approved):
    result, out = approved
    manifest = json.loads((out / "manifest.json").read_text())
    [shape] = manifest["speed"]["shapes"]
    assert len(shape["source_round_ms"]) == len(shape["artifact_round_ms"]) == 5  # benchmark.rounds default
    assert shape["source"]["iterations"] == 5 * 3  # 5 rounds of 3 calls
    estimate = shape["estimate"]
    # the interval is over the uncontended rounds (all 5 on a quiet machine), or over every round
    # when fewer than 3 were clean (then flagged contended and deciding no gate)
    clean = 5 - len(shape["noise"]["contended_rounds"])
    assert estimate["rounds"] == (5 if shape["contended"] else clean) and 0 < estimate["ci_low"] <= estimate["ci_high"]
    assert shape["contended"] == (clean < 3) and len(shape["noise"]["round_others_cores"]) == 5
    assert {"load_before", "others_cores", "cv_source", "cv_artifact", "warnings"} <= set(shape["noise"])
    assert manifest["speed"]["rounds"] == 5 and "95 % interval" in (out / "report.md").read_text()
    [step] = [s for s in result.steps if s.name == "benchmark speed"]
    assert step.warnings == result.speed.warnings and step.details["rounds"] == {"cpu batch 1 × seq 16": 5}
    # what each part of the benchmark cost, in wall seconds (docs/benchmarks.md quotes them)
    assert set(step.details["seconds"]) == {"fixed shapes", "real lengths", "batch scan", "peak memory"}
    assert all(v >= 0 for v in step.details["seconds"].values()) and step.details["seconds"]["fixed shapes"] > 0


def test_real_workloads_are_recorded_and_reported(approved):
    """Real-length throughput per batch size, the batch-size scan (ner-int8 scans up to 16), p99 and
    each runner's own peak memory are in the manifest, report.md, report.html and the result."""
    result, out = approved
    speed = json.loads((out / "manifest.json").read_text())["speed"]
    [real] = speed["real_length"]  # FAST times batch 1 only
    assert real["batch_size"] == 1 and real["padding"] == "per-batch" and real["samples"] == real["batches"] >= 1
    assert real["mean_length"] <= 16 and real["source_throughput"] > 0 and real["artifact_throughput"] > 0
    assert len(real["source_round_s"]) == 5 and real["estimate"]["rounds"] == 5
    scan = speed["batch_scan"]
    assert [p["batch_size"] for p in scan["points"]][:1] == [1] and scan["max_batch"] == 16
    assert scan["best_batch_size"] in [p["batch_size"] for p in scan["points"]]
    assert speed["shapes"][0]["artifact"]["p99_ms"] >= speed["shapes"][0]["artifact"]["p90_ms"]
    source, artifact = speed["peak_memory"]["source"], speed["peak_memory"]["artifact"]
    assert source["peak_mb"] > 0 and artifact["peak_mb"] >= artifact["baseline_mb"] > 0
    assert "VmHWM" in source["method"] and "child process" in artifact["scope"]
    html, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert 'id="workloads"' in html and "best batch size <strong>" in html and "p50 / p90 / p99 ms" in html
    assert "### Real workloads" in md and "peak memory of the artifact's own process" in md
    assert result.speed is not None and result.speed.batch_scan is not None


def test_every_gate_is_recorded_with_threshold_and_value(approved):
    result, out = approved
    gates = {g.metric: g for g in result.gates}
    assert {"nonfinite_outputs", "tag_agreement", "entity_f1_drop"} <= set(gates)
    assert all(g.status == "passed" for g in result.gates)
    assert gates["tag_agreement"].threshold == 0.99 and gates["tag_agreement"].value >= 0.99
    report = (out / "report.md").read_text()
    assert "APPROVED" in report and "tag_agreement >= 0.99" in report


def test_steps_record_fusions_and_quantization(approved):
    result, _ = approved
    steps = {s.name: s for s in result.steps}
    assert steps["fuse"].details["fusions"]["Attention"] == 2
    assert steps["quantize-dynamic"].details["per_channel"] is True
    assert steps["export"].details["export_check_max_abs_error"] < 1e-3


def test_failed_gate_writes_nothing(tiny, tmp_path):
    """The int8 search is off (NER_INT8_FIXED): an impossible gate would otherwise send it through every
    stage for nothing; a search that finds no passing candidate writes nothing either
    (tests/unit/search/test_search.py::test_nothing_passes_fails_with_the_closest_candidate_and_writes_nothing)."""
    out = tmp_path / "rejected"
    overrides = {**FAST, **NER_INT8_FIXED, "validation.gates": [{"metric": "max_abs_error", "max": 0.0}]}
    result = optkit.convert(tiny["pt"], "ner-int8", out, data=str(tiny["conll"]), overrides=overrides)
    assert not result.approved and result.output_dir is None
    # the accuracy gate fails; the int8 recipe's compute gate (an int8 model was built) passes
    assert [(g.kind, g.status) for g in result.gates] == [("accuracy", "failed"), ("compute", "passed")]
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(GateFailed, match="max_abs_error"):
        result.raise_for_status()


def test_absent_cuda_speed_gate_is_skipped_and_strict_fails(tiny, tmp_path):
    overrides = {**FAST, "benchmark.gates": [{"batch_size": 1, "min": 1.0, "device": "cuda"}]}
    lax = optkit.convert(tiny["pt"], "ner-fp16", tmp_path / "a", data=str(tiny["conll"]), overrides=overrides)
    speed = [g for g in lax.gates if g.kind == "speed"]
    assert [g.status for g in speed] == ["skipped"] and "CUDA" in speed[0].reason
    assert speed[0].value is None and speed[0].name == "speedup b1 cuda >= 1"
    assert speed[0].reason.startswith("no CUDA execution provider in this onnxruntime (providers: cpu)")
    assert lax.speed is not None and lax.speed.skipped_devices == {"cuda": speed[0].reason}
    assert lax.approved and lax.rejections == [] and (tmp_path / "a" / "manifest.json").exists()
    strict = optkit.convert(
        tiny["pt"], "ner-fp16", tmp_path / "b", data=str(tiny["conll"]), overrides=overrides, strict=True
    )
    assert not strict.approved and not (tmp_path / "b").exists()
    assert strict.rejections == ["speedup b1 cuda >= 1"]  # the skipped gate is what --strict refuses
    with pytest.raises(GateFailed, match=r"not approved: speedup b1 cuda >= 1"):
        strict.raise_for_status()


def test_random_inputs_are_labelled_and_label_gates_skip(tiny, tmp_path):
    result = optkit.convert(tiny["pt"], "ner-int8", tmp_path / "r", overrides=FAST)
    assert result.data.kind == "random" and not result.data.real
    assert any("random inputs" in w for w in result.warnings)
    f1 = next(g for g in result.gates if g.metric == "entity_f1_drop")
    assert f1.status == "skipped" and f1.value is None and f1.reason  # says why it was not computed


@pytest.mark.parametrize("key", ["pt2", "hf"])
def test_other_torch_sources_convert(tiny, tmp_path, key):
    result = optkit.convert(tiny[key], "fp32", tmp_path / key, data=str(tiny["conll"]), overrides=FAST)
    assert result.approved, [(g.name, g.value, g.status) for g in result.gates]
    fuse = next(s for s in result.steps if s.name == "fuse")
    if key == "pt2":  # the dynamo exporter's attention does not match ORT's fusion: must be a warning
        assert fuse.details["attention_fusions"] == 0 and any("0 Attention" in w for w in result.warnings)
    else:
        assert fuse.details["attention_fusions"] == 2


def test_existing_output_is_refused_before_work(tiny, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match="--overwrite"):
        optkit.convert(tiny["pt"], "fp32", tmp_path / "out", overrides=FAST)


def test_same_source_and_recipe_give_a_byte_identical_model(tiny, tmp_path, approved):
    _, first = approved
    again = optkit.convert(
        tiny["pt"], "ner-int8", tmp_path / "again", data=str(tiny["conll"]), overrides={**FAST, **NER_INT8_FIXED}
    )
    assert sha256_file(again.output_dir / "model.onnx") == sha256_file(first / "model.onnx")


def test_data_may_be_a_path_object(tmp_path):
    """``convert(data=Path(...))`` is read as the data path (it used to fail recipe validation)."""
    from optkit.errors import DataError

    source = tmp_path / "model.onnx"
    source.write_bytes(b"not read before the data check")
    with pytest.raises(DataError, match="missing.npz"):
        optkit.convert(source, "fp32", tmp_path / "out", data=tmp_path / "missing.npz")
