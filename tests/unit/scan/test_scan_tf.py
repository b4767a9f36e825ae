"""TensorFlow scan: a SavedModel whose serving signature writes a file is refused; a Keras export
passes (its checkpoint functions hold SaveV2/RestoreV2, which the signatures do not reach).

TensorFlow is imported here (the scan parses saved_model.pb with its protobufs); fixtures are built
in child processes. No Paddle in this module (importing TF then Paddle crashes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hostile_models import build_in_child
from optkit.errors import UnsafeModelError
from optkit.scan import scan_source

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tf-scan")
    return {
        "hostile": build_in_child("savedmodel_writing_file", folder),
        "benign": build_in_child("keras_export", folder),
        "folder": folder,
    }


def test_hostile_savedmodel_really_writes_a_file(models):
    """The fixture is what the issue describes: calling its signature writes a file."""
    code = (
        f"import tensorflow as tf; m = tf.saved_model.load({str(models['hostile'])!r}); "
        "m.signatures['serving_default'](x=tf.ones([1, 4]))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    assert (models["folder"] / "written_by_model.txt").read_text() == "4.000000"


def test_write_file_in_serving_signature_is_refused(models):
    with pytest.raises(UnsafeModelError, match=r"'WriteFile' in .*hostile_savedmodel/saved_model\.pb") as info:
        scan_source(models["hostile"], "tensorflow")
    assert "--trust-model-code" in info.value.hint and info.value.exit_code == 2


def test_keras_export_passes_despite_checkpoint_ops(models):
    report = scan_source(models["benign"], "tensorflow")
    assert report.passed and not report.findings
    scanned = " ".join(report.checked)
    assert "__call__" in scanned and "traced_save" not in scanned and "traced_restore" not in scanned
    # the checkpoint functions do hold the ops the deny-list names: only reachability lets it pass
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel.FromString((models["benign"] / "saved_model.pb").read_bytes())
    ops = {n.op for f in model.meta_graphs[0].graph_def.library.function for n in f.node_def}
    assert {"SaveV2", "RestoreV2"} <= ops


def test_trust_model_code_skips(models):
    report = scan_source(models["hostile"], "tensorflow", trust_model_code=True)
    assert report.skipped and not report.passed and report.to_dict()["skipped"] is True


def test_keras_lambda_refused_and_plain_keras_passes(models):
    lam = build_in_child("keras_with_lambda", models["folder"])
    with pytest.raises(UnsafeModelError, match=r"'Lambda' in .*lambda\.keras") as info:
        scan_source(lam, "tensorflow")
    # --trust-model-code would not help: Keras' safe_mode (kept on by the loader) refuses them too
    assert info.value.hint == "optkit does not load Lambda layers (Keras safe_mode); rebuild the model without them"
    assert scan_source(models["folder"] / "model.keras", "tensorflow").passed
