"""optkit verify: any changed, missing or extra byte is caught; JUnit output per gate."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

import optkit
from optkit.artifact.verify import verify_artifact
from optkit.cli.app import app
from optkit.errors import OutputError
from tests_support import FAST

runner = CliRunner()


@pytest.fixture(scope="module")
def artifact(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "art"
    result = optkit.convert(tiny["pt"], "ner-int8", out, data=str(tiny["conll"]), overrides=FAST)
    assert result.approved
    return out


@pytest.fixture
def copy(artifact, tmp_path):
    target = tmp_path / "art"
    shutil.copytree(artifact, target)
    return target


def test_untouched_artifact_verifies(copy):
    result = verify_artifact(copy)
    assert result.ok and result.checked_files == ["model.onnx", "report.md"]
    assert runner.invoke(app, ["verify", str(copy)]).exit_code == 0


@pytest.mark.parametrize("name", ["model.onnx", "report.md", "manifest.json"])
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
    overrides = ["--set", "benchmark.iterations=3", "--set", "benchmark.warmup=1", "--batch-sizes", "1",
                 "--sequence-lengths", "16", "--set", "benchmark.gates=[{batch_size: 1, min: 1.0, device: cuda}]",
                 "--set", "validation.gates=[{metric: max_abs_error, max: 0}, {metric: tag_agreement, min: 0.5}]"]
    done = runner.invoke(app, ["convert", str(tiny["pt"]), "--recipe", "ner-int8", "--data", str(tiny["conll"]),
                               "-o", str(tmp_path / "o"), "--junit-xml", str(junit), *overrides])
    assert done.exit_code == 1
    suite = ET.parse(junit).getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    assert cases["max_abs_error <= 0"].find("failure") is not None
    assert cases["tag_agreement >= 0.5"].find("failure") is None
    assert cases["speedup b1 cuda >= 1"].find("skipped") is not None
