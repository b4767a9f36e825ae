"""PyTorch → ONNX.

* TorchScript, HF folders and trusted pickled modules go through the TorchScript-based exporter
  (``torch.onnx.export(..., dynamo=False)``) with named dynamic axes: its graphs keep the
  MatMul/Softmax attention pattern that ONNX Runtime's transformer fusions match.
* ``torch.export`` programs (``.pt2``) go through the dynamo exporter
  (``torch.onnx.export(program, dynamo=True)``); their dynamic shapes come from the program.

Exporter warnings are captured into the report instead of being printed.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from optkit.errors import ExportError
from optkit.onnx_io import load_onnx, save_onnx
from optkit.pass_context import PassOutcome
from optkit.recipe import ExportConfig
from optkit.records.figures import Figure
from optkit.runners.base import Feeds
from optkit.sources.torch_source import TorchSource


def export(
    source: TorchSource, example: Feeds, config: ExportConfig, out_path: Path, external_threshold_mb: float = 1800.0
) -> PassOutcome:
    """Export ``source`` to ``out_path``.

    Args:
        source: the loaded PyTorch model.
        example: one real input batch ``{name: array}`` used to trace.
        config: opset and dynamic-axes settings.
        out_path: where to write the ``.onnx`` file.

    Raises:
        ExportError: the exporter raises (its first line is in the message).
    """
    import torch

    info = source.info
    args = tuple(torch.from_numpy(np.ascontiguousarray(example[n])) for n in info.input_names)
    captured: list[str] = []
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(sink):
            warnings.simplefilter("always")
            if source.kind == "torch.export":
                program = torch.onnx.export(
                    source.program,
                    args=(),
                    dynamo=True,
                    opset_version=config.opset,
                    input_names=info.input_names,
                    output_names=info.output_names,
                    verbose=False,
                    optimize=True,
                )
                assert program is not None  # dynamo=True returns an ONNXProgram
                model = program.model_proto
                exporter = "torch.onnx (dynamo)"
            else:
                buffer = io.BytesIO()
                torch.onnx.export(
                    source.module,
                    args,
                    buffer,  # type: ignore[arg-type, unused-ignore]  # the TorchScript exporter takes a file object
                    dynamo=False,
                    opset_version=config.opset,
                    input_names=info.input_names,
                    output_names=info.output_names,
                    dynamic_axes=info.dynamic_axes if config.dynamic_axes else None,
                    do_constant_folding=True,
                )
                import onnx

                model = onnx.load_model_from_string(buffer.getvalue())
                exporter = "torch.onnx (TorchScript)"
        captured = sorted(
            {str(w.message).splitlines()[0][:200] for w in caught if not issubclass(w.category, DeprecationWarning)}
        )
    except Exception as exc:  # torch.onnx raises many error types
        raise ExportError(
            f"torch.onnx.export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            "try another --opset, or export with torch.export (.pt2)",
        ) from exc
    save_onnx(model, out_path, external_threshold_mb)
    model = load_onnx(out_path)
    details: dict[str, Figure] = {
        "exporter": exporter,
        "opset": config.opset,
        "source_kind": source.kind,
        "dynamic_axes": config.dynamic_axes,
        "nodes": len(model.graph.node),
        "exporter_warnings": captured,
    }
    return PassOutcome(out_path, details, [])
