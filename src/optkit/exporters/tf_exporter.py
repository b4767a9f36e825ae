"""TensorFlow / Keras → ONNX with tf2onnx, always through a SavedModel.

Keras 3 breaks ``tf2onnx.convert.from_keras`` (``KeyError: 'keras_tensor_…'``); exporting the Keras
model as a SavedModel (``model.export``) and converting that works. tf2onnx runs as its documented
command line (``python -m tf2onnx.convert``) in a child process, with inputs and outputs renamed to
the source model's names.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from optkit.errors import ExportError
from optkit.onnx_io import load_onnx
from optkit.passes.base import PassOutcome
from optkit.recipe import ExportConfig
from optkit.runners.base import Feeds
from optkit.sources.tf_source import SERVING, TFSource


def export(source: TFSource, example: Feeds, config: ExportConfig, out_path: Path,
           external_threshold_mb: float = 1800.0) -> PassOutcome:
    """Convert to ONNX at ``config.opset``.

    Raises:
        ExportError: ``model.export`` or tf2onnx fails (tf2onnx's last error line in the message).
    """
    saved = source.path
    if source.kind == "keras":
        saved = out_path.parent / "savedmodel"
        try:
            source.model.export(str(saved), verbose=False)
        except Exception as exc:
            raise ExportError(f"Keras could not export a SavedModel: {str(exc).splitlines()[0][:300]}",
                              "check that the model can be called on its inputs") from exc
    info = source.info
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved), "--output", str(out_path),
               "--opset", str(config.opset), "--signature_def", SERVING,
               "--rename-inputs", ",".join(info.input_names), "--rename-outputs", ",".join(info.output_names)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not out_path.exists():
        last = [ln for ln in done.stderr.splitlines() if ln.strip()][-1:] or ["no output"]
        raise ExportError(f"tf2onnx failed: {last[0][:300]}", "try another --opset; see tf2onnx's supported ops")
    model = load_onnx(out_path)
    details = {"exporter": "tf2onnx (SavedModel)", "opset": config.opset, "source_kind": source.kind,
               "nodes": len(model.graph.node)}
    return PassOutcome(out_path, details)
