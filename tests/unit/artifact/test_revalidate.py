"""optkit verify --data: the artifact is validated against its source model again, on new data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

import optkit
from optkit.artifact.revalidate import revalidate
from optkit.cli.app import app
from optkit.errors import DataError, SourceModelError
from tests_support import FAST

runner = CliRunner()
GATES = [{"metric": "label_agreement", "min": 0.995}, {"metric": "accuracy_artifact", "min": 0.8}]


@pytest.fixture(scope="module")
def sk_artifact(tiny_sklearn, tmp_path_factory):
    """A converted copy of the tiny scikit-learn model (the copy can be changed by tests)."""
    folder = tmp_path_factory.mktemp("reval")
    source = folder / "model.skops"
    shutil.copy(tiny_sklearn["skops"], source)
    out = folder / "art"
    result = optkit.convert(
        source, "sklearn-fp32", out, data=str(tiny_sklearn["npz"]), overrides={**FAST, "validation.gates": GATES}
    )
    assert result.approved, [(g.name, g.value, g.status) for g in result.gates]
    return out, source


def test_same_data_passes_every_accuracy_gate(sk_artifact, tiny_sklearn):
    out, _ = sk_artifact
    result = revalidate(out, str(tiny_sklearn["npz"]))
    assert result.ok and [g.status for g in result.gates] == ["passed", "passed"]
    assert result.samples == 89 and result.accuracy.metrics["label_agreement"] == 1.0
    cli = runner.invoke(app, ["verify", str(out), "--data", str(tiny_sklearn["npz"]), "--json"])
    assert cli.exit_code == 0, cli.output
    payload = json.loads(cli.stdout)
    assert payload["ok"] and payload["revalidation"]["samples"] == 89


def test_failing_gate_on_new_data_is_named_exit_1(sk_artifact, tiny_sklearn, tmp_path):
    out, _ = sk_artifact
    with np.load(tiny_sklearn["npz"]) as npz:
        x, y = npz["X"], npz["y"]
    shifted = tmp_path / "drift.npz"
    np.savez(shifted, X=x, y=(y + 1) % 3)  # gold labels no longer match: accuracy collapses
    result = revalidate(out, str(shifted))
    assert not result.ok and [g.metric for g in result.failed_gates] == ["accuracy_artifact"]
    assert result.problems[0].startswith(f"gate failed on {shifted}: accuracy_artifact >= 0.8 (measured ")
    cli = runner.invoke(app, ["verify", str(out), "--data", str(shifted)])
    assert cli.exit_code == 1 and "accuracy_artifact >= 0.8" in cli.output


def test_gate_without_labels_is_skipped_and_strict_fails(sk_artifact, tiny_sklearn, tmp_path):
    out, _ = sk_artifact
    with np.load(tiny_sklearn["npz"]) as npz:
        np.savez(tmp_path / "nolabels.npz", X=npz["X"])
    assert revalidate(out, str(tmp_path / "nolabels.npz")).ok
    strict = revalidate(out, str(tmp_path / "nolabels.npz"), strict=True)
    assert not strict.ok and "gate skipped" in strict.problems[0] and "accuracy_artifact" in strict.problems[0]


def test_changed_source_is_refused_exit_2(sk_artifact, tiny_sklearn, tmp_path):
    out, source = sk_artifact
    changed = tmp_path / "model.skops"
    data = bytearray(source.read_bytes())
    data[-30] ^= 1
    changed.write_bytes(bytes(data))
    with pytest.raises(SourceModelError, match="not the one the artifact was made from"):
        revalidate(out, str(tiny_sklearn["npz"]), source=changed)
    cli = runner.invoke(app, ["verify", str(out), "--data", str(tiny_sklearn["npz"]), "--source", str(changed)])
    assert cli.exit_code == 2 and "source model error" in cli.output and "--source" in cli.output


def test_moved_source_can_be_named(sk_artifact, tiny_sklearn, tmp_path):
    out, source = sk_artifact
    moved = tmp_path / "elsewhere.skops"
    shutil.copy(source, moved)
    assert revalidate(out, str(tiny_sklearn["npz"]), source=moved).ok
    with pytest.raises(SourceModelError, match="not found"):
        revalidate(out, str(tiny_sklearn["npz"]), source=tmp_path / "gone.skops")


def test_data_that_does_not_fit_the_model_is_data_error(sk_artifact, tmp_path):
    out, _ = sk_artifact
    np.savez(tmp_path / "narrow.npz", X=np.zeros((4, 5)))
    with pytest.raises(DataError, match=r"'X'.*\(4, 5\).*\(batch, 13\) float32"):
        revalidate(out, str(tmp_path / "narrow.npz"))
    cli = runner.invoke(app, ["verify", str(out), "--data", str(tmp_path / "narrow.npz")])
    assert cli.exit_code == 2 and cli.output.count("data error") == 1


def test_model_that_does_not_run_is_a_problem(sk_artifact, tiny_sklearn, tmp_path):
    out, _ = sk_artifact
    broken = tmp_path / "art"
    shutil.copytree(out, broken)
    (broken / "model.onnx").write_bytes(b"\x08\x08\x12garbage")
    result = revalidate(broken, str(tiny_sklearn["npz"]))
    assert not result.ok and "does not run in ONNX Runtime" in result.problems[0]
    cli = runner.invoke(app, ["verify", str(broken), "--data", str(tiny_sklearn["npz"])])
    assert cli.exit_code == 1 and "modified file: model.onnx" in cli.output


def test_torch_artifact_revalidates_on_conll(tiny, tiny_ner_int8):
    _, out = tiny_ner_int8  # the session's shared approved ner-int8 artifact (read only)
    result = revalidate(out, str(tiny["conll"]))
    assert result.ok and {g.metric for g in result.gates} >= {"tag_agreement", "entity_f1_drop"}
    assert all(g.status == "passed" for g in result.gates)
    # validation.padding: both (the default), as convert: fixed and per-batch, the worse value gated
    assert set(result.by_padding) == {"fixed", "per-batch"}
    for metric in ("tag_agreement", "entity_f1_drop"):
        worse = min if metric == "tag_agreement" else max
        assert result.accuracy.metrics[metric] == worse(v[metric] for v in result.by_padding.values())
    cli = runner.invoke(app, ["verify", str(out), "--data", str(tiny["conll"]), "--json"])
    assert cli.exit_code == 0, cli.output
    payload = json.loads(cli.output[cli.output.index("{") :])
    assert set(payload["revalidation"]["by_padding"]) == {"fixed", "per-batch"}


def test_fixed_padding_recipe_revalidates_fixed_only(tiny, tmp_path, monkeypatch):
    out = tmp_path / "ner"
    overrides = {**FAST, "validation.padding": "fixed"}
    assert optkit.convert(tiny["pt"], "ner-int8", out, data=str(tiny["conll"]), overrides=overrides).approved
    import optkit.artifact.revalidate as module

    seen = []
    original = module.reference_outputs
    monkeypatch.setattr(module, "reference_outputs", lambda *a: seen.append(a[-1]) or original(*a))
    result = revalidate(out, str(tiny["conll"]))
    assert result.ok and seen == ["fixed"] and result.by_padding == {}
