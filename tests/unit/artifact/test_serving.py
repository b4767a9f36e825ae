"""The tune-session pass end to end: ``optkit convert`` with a recipe that includes it writes the
serving configuration (manifest + session.json), ``optkit verify`` loads the model with it, and a
tampered or hostile ``session.json`` fails verification."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

import optkit
from optkit.artifact.manifest import file_entries, seal
from optkit.artifact.verify import read_manifest, verify_artifact
from optkit.cli.app import app
from optkit.errors import EXIT_GATE_FAILED, OutputError
from optkit.records.manifest import Manifest
from optkit.records.session import SESSION_FILE, ServingConfig

runner = CliRunner()

RECIPE = """\
name: tiny-tuned
export: {opset: 17}
passes:
  - type: tune-session
    iterations: 3
    warmup: 1
    rounds: 3
    max_rounds: 3
    budget_s: 30
validation:
  gates:
    - {metric: nonfinite_outputs, max: 0}
    - {metric: max_abs_error, max: 0.001}
runtime: {threads: 2}
benchmark:
  batch_sizes: [1]
  iterations: 3
  warmup: 1
  gates: []
"""


def _tiny_onnx(folder: Path) -> tuple[Path, Path]:
    """A float MLP (x [N, 8] → MatMul → Relu → MatMul → y [N, 3]) and 16 samples of x."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 3)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "tiny.onnx"
    onnx.save(model, str(path))
    data = folder / "x.npz"
    np.savez(data, x=rng.standard_normal((16, 8)).astype(np.float32))
    return path, data


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    """An approved artifact made with a recipe whose last pass is tune-session (the CLI)."""
    root = tmp_path_factory.mktemp("tuned")
    model, data = _tiny_onnx(root)
    recipe = root / "tiny-tuned.yaml"
    recipe.write_text(RECIPE)
    out = root / "out"
    result = runner.invoke(app, ["convert", str(model), "--recipe", str(recipe), "--data", str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "session:" in result.output  # the terminal names the serving settings
    return out


def _copy(tuned: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(tuned, folder)
    return folder


def test_manifest_and_session_json_hold_the_same_serving_config(tuned):
    manifest, _ = read_manifest(tuned)
    assert manifest.serving is not None and SESSION_FILE in manifest.files
    on_disk = ServingConfig.model_validate_json((tuned / SESSION_FILE).read_text())
    assert on_disk == manifest.serving
    assert manifest.serving.threads_budget == 2 and manifest.serving.settings.threads_used <= 2
    assert manifest.serving.candidates and manifest.serving.batch_size == 1
    if manifest.serving.tuned:
        assert manifest.serving.gain is not None and manifest.serving.gain.ci_low > 1
    else:
        assert manifest.serving.change == "default" and manifest.serving.gain is None
    step = next(s for s in manifest.steps if s.name == "tune-session")
    assert step.details.figures["settings"] == manifest.serving.settings.label()


def test_the_report_shows_the_serving_settings(tuned):
    html = (tuned / "report.html").read_text()
    manifest, _ = read_manifest(tuned)
    assert "Serving configuration" in html and manifest.serving.settings.label() in html
    assert "Serving configuration" in (tuned / "report.md").read_text()
    from optkit.reporting.summary import render_summary

    assert f"**Session**: {manifest.serving.settings.label()}" in render_summary(manifest, str(tuned))


def test_verify_loads_the_model_with_the_serving_settings(tuned):
    result = verify_artifact(tuned)
    assert result.ok, result.problems
    assert result.serving is not None and result.serving == read_manifest(tuned)[0].serving
    cli = runner.invoke(app, ["verify", str(tuned)])
    assert cli.exit_code == 0, cli.output
    assert "loaded with its serving settings" in cli.output and result.serving.settings.label() in cli.output


def test_load_session_builds_the_session_with_the_serving_settings(tuned):
    session = optkit.load_session(tuned)
    settings = read_manifest(tuned)[0].serving.settings
    options = session.get_session_options()
    assert options.intra_op_num_threads == settings.intra_op_num_threads
    assert options.enable_cpu_mem_arena == settings.enable_cpu_mem_arena
    out = session.run(None, {"x": np.ones((2, 8), np.float32)})
    assert out[0].shape == (2, 3)


def test_tampered_session_json_fails_verify_and_load(tuned, tmp_path):
    folder = _copy(tuned, tmp_path)
    data = json.loads((folder / SESSION_FILE).read_text())
    data["settings"]["intra_op_num_threads"] = 1 if data["settings"]["intra_op_num_threads"] != 1 else 2
    (folder / SESSION_FILE).write_text(json.dumps(data))
    cli = runner.invoke(app, ["verify", str(folder)])
    assert cli.exit_code == EXIT_GATE_FAILED, cli.output
    assert "modified file: session.json" in cli.output
    assert "session.json disagrees with the manifest" in cli.output
    assert "loaded with its serving settings" not in cli.output
    with pytest.raises(OutputError, match="does not verify"):
        optkit.load_session(folder)


def test_hostile_session_json_with_an_unknown_option_is_refused(tuned, tmp_path):
    folder = _copy(tuned, tmp_path)
    data = json.loads((folder / SESSION_FILE).read_text())
    data["settings"]["register_custom_ops_library"] = "/tmp/evil.so"
    (folder / SESSION_FILE).write_text(json.dumps(data))
    result = verify_artifact(folder)
    assert not result.ok and result.serving is None
    assert any(p.startswith("session.json is not a valid serving configuration") for p in result.problems)


def test_over_budget_threads_are_refused_even_when_the_manifest_agrees(tuned, tmp_path):
    folder = _copy(tuned, tmp_path)
    manifest, _ = read_manifest(folder)
    hostile = manifest.serving.model_copy(
        update={"settings": manifest.serving.settings.model_copy(update={"intra_op_num_threads": 64})}
    )
    (folder / SESSION_FILE).write_text(hostile.model_dump_json(indent=2) + "\n")
    files = file_entries(folder, sorted(manifest.files))
    (folder / "manifest.json").write_text(seal(manifest.model_copy(update={"serving": hostile, "files": files})))
    result = verify_artifact(folder)
    assert not result.ok and result.serving is None
    assert any("asks for 64 threads, more than its thread budget (2)" in p for p in result.problems)


def test_missing_session_json_is_a_problem(tuned, tmp_path):
    folder = _copy(tuned, tmp_path)
    (folder / SESSION_FILE).unlink()
    result = verify_artifact(folder)
    assert not result.ok and "missing file: session.json" in result.problems


def test_the_page_rerenders_identically_and_escapes_a_hostile_change(tuned):
    from optkit.reporting.html import render_html

    manifest, _ = read_manifest(tuned)
    assert render_html(manifest) == (tuned / "report.html").read_text(encoding="utf-8")
    data = json.loads(manifest.model_dump_json())
    data["serving"]["candidates"][0]["change"] = "<script>alert(1)</script>"
    page = render_html(Manifest.model_validate(data))
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_artifact_without_the_pass_has_no_serving_config(tmp_path):
    model, data = _tiny_onnx(tmp_path)
    recipe = tmp_path / "plain.yaml"
    head, tail = RECIPE.split("passes:\n", 1)
    recipe.write_text(head + "passes: []\n" + tail.split("budget_s: 30\n", 1)[1])
    result = optkit.convert(model, str(recipe), tmp_path / "out", data=data)
    assert result.approved and result.serving is None
    manifest, text = read_manifest(tmp_path / "out")
    assert manifest.serving is None and '"serving"' not in text and SESSION_FILE not in manifest.files
    assert verify_artifact(tmp_path / "out").serving is None
    options = optkit.load_session(tmp_path / "out").get_session_options()
    assert options.intra_op_num_threads == 2  # the recipe's runtime.threads, optkit's default session
    assert optkit.load_session(tmp_path / "out", threads=1).get_session_options().intra_op_num_threads == 1


def test_load_session_refuses_a_folder_that_is_no_artifact(tmp_path):
    with pytest.raises(OutputError, match="has no manifest.json"):
        optkit.load_session(tmp_path)


def test_a_forged_serving_config_in_a_signed_artifact_fails_the_signature(tuned, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from optkit.artifact.attestation import ATTESTATION, write_attestation
    from optkit.artifact.signing import sign_artifact

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    folder = _copy(tuned, tmp_path)
    sign_artifact(folder, private)
    assert verify_artifact(folder, public_key=public).ok
    # the forger rewrites session.json and the manifest consistently, then re-seals (no key needed)
    manifest, _ = read_manifest(folder)
    # flip the setting, whatever the tuning chose (on a busy machine it may have chosen spin off already)
    spin = not manifest.serving.settings.allow_spinning
    forged = manifest.serving.model_copy(
        update={"settings": manifest.serving.settings.model_copy(update={"allow_spinning": spin})}
    )
    assert forged != manifest.serving
    (folder / SESSION_FILE).write_text(forged.model_dump_json(indent=2) + "\n")
    data = json.loads(manifest.model_dump_json())
    data["serving"] = json.loads(forged.model_dump_json())
    data["files"].update({k: v.model_dump() for k, v in file_entries(folder, [SESSION_FILE]).items()})
    assert data["files"][SESSION_FILE] != json.loads(manifest.model_dump_json())["files"][SESSION_FILE]
    write_attestation(folder, Manifest.model_validate(data))
    data["files"].update({k: v.model_dump() for k, v in file_entries(folder, [ATTESTATION]).items()})
    (folder / "manifest.json").write_text(seal(Manifest.model_validate(data)))
    assert verify_artifact(folder).ok  # a digest only catches accidents
    checked = verify_artifact(folder, public_key=public)
    assert not checked.ok and checked.signature.status == "invalid" and checked.serving is None
    assert any(p.startswith("signature invalid:") and SESSION_FILE in p for p in checked.problems), checked.problems
