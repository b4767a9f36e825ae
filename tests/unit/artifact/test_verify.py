"""optkit verify: any changed, missing or extra byte is caught; JUnit output per gate."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from optkit.artifact.attestation import ATTESTATION, write_attestation
from optkit.artifact.manifest import Manifest, file_entries, seal
from optkit.artifact.verify import verify_artifact
from optkit.cli.app import app
from optkit.errors import OutputError

runner = CliRunner()


@pytest.fixture
def artifact(tiny_ner_int8):
    """The session's shared approved ner-int8 artifact (tests/conftest.py); tests edit a copy."""
    return tiny_ner_int8[1]


@pytest.fixture
def copy(artifact, tmp_path):
    target = tmp_path / "art"
    shutil.copytree(artifact, target)
    return target


def test_untouched_artifact_verifies(copy):
    result = verify_artifact(copy)
    assert result.ok and result.checked_files == [ATTESTATION, "model.onnx", "report.html", "report.md"]
    assert result.signature.status == "unsigned"
    cli = runner.invoke(app, ["verify", str(copy)])
    assert cli.exit_code == 0 and "signature: unsigned" in cli.output


@pytest.mark.parametrize("name", ["model.onnx", "report.md", "manifest.json", ATTESTATION])
@pytest.mark.parametrize("first", [True, False])
def test_one_byte_change_in_any_file_is_detected(copy, name, first):
    path = copy / name
    data = bytearray(path.read_bytes())
    if name == "manifest.json":  # a space of indentation turned into a tab: still valid JSON, same content
        where = data.index(b"\n ") + 1 if first else data.rindex(b"\n ") + 1
    else:
        where = 0 if first else len(data) - 2
    data[where] = ord("\t") if data[where] == ord(" ") else ord(" ")
    path.write_bytes(bytes(data))
    result = verify_artifact(copy)
    assert not result.ok and any(name in p for p in result.problems), result.problems
    cli = runner.invoke(app, ["verify", str(copy)])
    assert cli.exit_code == 1 and name in cli.output


def test_missing_and_extra_files(copy):
    (copy / "report.md").unlink()
    (copy / "notes.txt").write_text("added later")
    problems = verify_artifact(copy).problems
    assert "missing file: report.md" in problems and "extra file not in the manifest: notes.txt" in problems


def test_not_an_artifact(tmp_path):
    with pytest.raises(OutputError, match="manifest.json"):
        verify_artifact(tmp_path)
    assert runner.invoke(app, ["verify", str(tmp_path / "nope")]).exit_code == 2


def test_junit_has_one_case_per_gate(tiny, tmp_path):
    junit = tmp_path / "gates.xml"
    overrides = [
        "--set",
        "benchmark.iterations=3",
        "--set",
        "benchmark.warmup=1",
        "--batch-sizes",
        "1",
        "--sequence-lengths",
        "16",
        "--set",
        "benchmark.gates=[{batch_size: 1, min: 1.0, device: cuda}]",
        "--set",
        "validation.gates=[{metric: max_abs_error, max: 0}, {metric: tag_agreement, min: 0.5}]",
    ]
    done = runner.invoke(
        app,
        [
            "convert",
            str(tiny["pt"]),
            "--recipe",
            "ner-int8",
            "--data",
            str(tiny["conll"]),
            "-o",
            str(tmp_path / "o"),
            "--junit-xml",
            str(junit),
            *overrides,
        ],
    )
    assert done.exit_code == 1
    suite = ET.parse(junit).getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    # the int8 recipe's compute gate (int8_compute_ops >= 1) is the fourth case
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    assert cases["int8_compute_ops >= 1"].find("failure") is None
    assert cases["max_abs_error <= 0"].find("failure") is not None
    assert cases["tag_agreement >= 0.5"].find("failure") is None
    assert cases["speedup b1 cuda >= 1"].find("skipped") is not None
    skipped = cases["speedup b1 cuda >= 1"].find("skipped").get("message")
    assert skipped.startswith("measured not measured, required >= 1; no CUDA execution provider")
    assert "max_abs_error" in cases["max_abs_error <= 0"].get("name")
    assert cases["max_abs_error <= 0"].find("failure").get("message").startswith("measured ")


def reseal(folder, edit):
    """A forger's edit of manifest.json: attestation rewritten to match, digest recomputed as seal() does."""
    data = json.loads((folder / "manifest.json").read_text())
    edit(data)
    write_attestation(folder, Manifest.model_validate(data))
    data["files"].update({k: v.model_dump() for k, v in file_entries(folder, [ATTESTATION]).items()})
    (folder / "manifest.json").write_text(seal(Manifest.model_validate(data)))


def test_symlinked_folder_inside_the_artifact_is_reported(copy, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "payload.bin").write_bytes(b"x")
    (copy / "extra").symlink_to(outside, target_is_directory=True)
    problems = verify_artifact(copy).problems
    assert problems == ["symlink in the artifact: extra (an artifact holds regular files only)"]


def test_listed_file_replaced_by_a_symlink_to_an_identical_file_is_reported(copy, tmp_path):
    same = tmp_path / "report.md"
    shutil.copy(copy / "report.md", same)
    (copy / "report.md").unlink()
    (copy / "report.md").symlink_to(same)
    problems = verify_artifact(copy).problems
    assert problems == ["symlink in the artifact: report.md (an artifact holds regular files only)"]


def test_extra_symlink_and_folders_are_reported(copy):
    (copy / "link.onnx").symlink_to("model.onnx")
    (copy / "empty").mkdir()
    (copy / "sub").mkdir()
    (copy / "sub" / "notes.txt").write_text("x")
    result = runner.invoke(app, ["verify", str(copy)])
    assert result.exit_code == 1
    problems = verify_artifact(copy).problems
    assert sorted(problems) == [
        "extra file not in the manifest: sub/notes.txt",
        "extra folder not in the manifest: empty",
        "extra folder not in the manifest: sub",
        "symlink in the artifact: link.onnx (an artifact holds regular files only)",
    ]


def test_attestation_must_agree_with_the_manifest(copy):
    reseal(copy, lambda data: None)
    assert verify_artifact(copy).ok  # a faithful re-seal changes nothing
    statement = json.loads((copy / ATTESTATION).read_text())
    statement["predicate"]["approved"] = False
    (copy / ATTESTATION).write_text(json.dumps(statement))
    data = json.loads((copy / "manifest.json").read_text())
    data["files"].update({k: v.model_dump() for k, v in file_entries(copy, [ATTESTATION]).items()})
    (copy / "manifest.json").write_text(seal(Manifest.model_validate(data)))
    assert verify_artifact(copy).problems == ["attestation disagrees with the manifest: predicate"]


@pytest.mark.parametrize("keep", ["none", "speed", "skipped", "standalone"])
def test_strict_rejects_approval_without_an_evaluated_accuracy_gate(copy, keep):
    def edit(data):
        accuracy = [g for g in data["gates"] if g["kind"] == "accuracy"]
        speed = {**accuracy[0], "kind": "speed", "name": "speedup b1 cpu >= 1", "metric": "speedup"}
        skipped = [{**g, "status": "skipped", "value": None} for g in accuracy]
        standalone = [{**accuracy[0], "metric": "nonfinite_outputs", "name": "nonfinite_outputs <= 0"}]
        data["gates"] = {"none": [], "speed": [speed], "skipped": skipped, "standalone": standalone}[keep]

    reseal(copy, edit)
    assert verify_artifact(copy).ok  # not strict: approval without an accuracy gate still passes
    problems = verify_artifact(copy, strict=True).problems
    assert (
        "no gate comparing the artifact with the source was evaluated (every one skipped, or none in the recipe)"
    ) in problems
    assert runner.invoke(app, ["verify", str(copy), "--strict"]).exit_code == 1


def test_strict_rejects_random_input_evidence(copy):
    reseal(copy, lambda data: data.update(evidence="random-inputs"))
    assert verify_artifact(copy).ok
    assert any("random inputs" in p for p in verify_artifact(copy, strict=True).problems)


def test_an_inconclusive_gate_in_the_manifest_is_a_problem(copy):
    """A manifest edited to say approved with an inconclusive speed gate does not verify, strict or not."""

    def edit(data):
        accuracy = [g for g in data["gates"] if g["kind"] == "accuracy"]
        speed = {**accuracy[0], "kind": "speed", "name": "speedup b1 cpu >= 1.2", "metric": "speedup"}
        data["gates"] = [*accuracy, {**speed, "status": "inconclusive", "ci_low": 1.0, "ci_high": 1.5}]

    reseal(copy, edit)
    for strict in (False, True):
        assert "gate inconclusive: speedup b1 cpu >= 1.2" in verify_artifact(copy, strict=strict).problems
