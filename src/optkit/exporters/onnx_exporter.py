"""ONNX → ONNX "export" for ONNX sources: the model is copied, not converted.

Its weights are read from its external data files (if any) and written again by
:func:`optkit.onnx_io.save_onnx` with the recipe's external-data threshold, so the copy is
self-contained in the work folder; the copy is checked with ``onnx.checker``. The model keeps its
own opsets (``export.opset`` does not apply: converting opsets is not a copy).
"""

from __future__ import annotations

from pathlib import Path

from optkit.errors import ExportError
from optkit.onnx_io import load_onnx, save_onnx
from optkit.pass_context import PassOutcome
from optkit.recipe import ExportConfig
from optkit.records.figures import Figure
from optkit.runners.base import Feeds
from optkit.sources.onnx_source import OnnxSource


def export(
    source: OnnxSource, example: Feeds, config: ExportConfig, out_path: Path, external_threshold_mb: float = 1800.0
) -> PassOutcome:
    """Copy ``source`` to ``out_path`` (weights inline, or in ``<name>.data`` above the threshold).

    Args:
        source: the loaded ONNX source.
        example: unused (nothing is traced).
        config: unused but for the report (the model's own opsets are kept).
        out_path: where to write the copy.
        external_threshold_mb: weights above this many MB (10^6 bytes) go to ``<name>.data``.

    Raises:
        ExportError: the copy does not pass ``onnx.checker``.
    """
    import onnx

    model = load_onnx(source.path)
    written = save_onnx(model, out_path, external_threshold_mb)
    try:
        onnx.checker.check_model(str(out_path))
    except Exception as exc:  # onnx.checker.ValidationError
        raise ExportError(
            f"the copy of {source.path} does not pass onnx.checker: {str(exc).strip().splitlines()[0][:300]}",
            "check the source model with onnx.checker.check_model",
        ) from exc
    details: dict[str, Figure] = {
        "exporter": "copy (ONNX source)",
        "opset": source.opsets,
        "source_kind": source.kind,
        "source_external_data": source.external_files,
        "external_data": len(written) > 1,
        "nodes": len(model.graph.node),
    }
    if source.opsets.get("ai.onnx") not in (None, config.opset):
        details["opset_note"] = f"model opset {source.opsets['ai.onnx']} kept; export.opset {config.opset} not applied"
    return PassOutcome(out_path, details)
