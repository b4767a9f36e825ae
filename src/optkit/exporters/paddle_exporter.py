"""PaddlePaddle → ONNX with paddle2onnx, run in a child process.

paddle2onnx prints from C++ (which would corrupt ``--json`` output) and, with its default
``enable_optimize=True``, has Polygraphy pip-install onnx-graphsurgeon at run time; optkit runs it
in a child process with ``enable_optimize=False`` (the recipe's own simplify pass optimizes) and
``POLYGRAPHY_AUTOINSTALL_DEPS=0``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from optkit.errors import ExportError
from optkit.onnx_io import load_onnx, save_onnx
from optkit.pass_context import PassOutcome
from optkit.recipe import ExportConfig
from optkit.records.figures import Figure
from optkit.runners.base import Feeds
from optkit.sources.paddle_source import PaddleSource

SCRIPT = (
    "import sys, paddle2onnx; paddle2onnx.export(sys.argv[1], sys.argv[2], sys.argv[3], "
    "opset_version=int(sys.argv[4]), auto_upgrade_opset=False, enable_optimize=False)"
)


def export(
    source: PaddleSource, example: Feeds, config: ExportConfig, out_path: Path, external_threshold_mb: float = 1800.0
) -> PassOutcome:
    """Convert at ``config.opset``; input/output names are Paddle's, outputs renamed to match.

    Raises:
        ExportError: paddle2onnx fails (its last error line in the message).
    """
    env = {**os.environ, "POLYGRAPHY_AUTOINSTALL_DEPS": "0", "GLOG_minloglevel": "2"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(source.program), str(source.params), str(out_path), str(config.opset)],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0 or not out_path.exists():
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        raise ExportError(
            f"paddle2onnx failed: {(lines[-1] if lines else 'no output')[:300]}",
            "try another --opset; see paddle2onnx's supported ops",
        )
    model = load_onnx(out_path)
    renamed = _rename_outputs(model, source.info.output_names)
    if renamed:
        save_onnx(model, out_path, external_threshold_mb)
    details: dict[str, Figure] = {
        "exporter": "paddle2onnx",
        "opset": config.opset,
        "source_kind": source.kind,
        "nodes": len(model.graph.node),
        "renamed_outputs": renamed,
    }
    return PassOutcome(out_path, details)


def _rename_outputs(model, names: list[str]) -> dict[str, str]:
    """Give graph outputs the predictor's output names (paddle2onnx may call them fetch_name_N)."""
    mapping = {o.name: n for o, n in zip(model.graph.output, names, strict=False) if o.name != n}
    for node in model.graph.node:
        node.output[:] = [mapping.get(o, o) for o in node.output]
        node.input[:] = [mapping.get(i, i) for i in node.input]
    for output in model.graph.output:
        output.name = mapping.get(output.name, output.name)
    return mapping
