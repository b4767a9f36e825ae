"""The post-export check: the freshly exported ONNX model and the source model run on one real batch;
every float output, matched by name, must be allclose (``|onnx - src| <= atol + rtol * |src|``, at
real tokens: padded positions by ``attention_mask`` are not compared), so an
exporter that "succeeds with a warning" but computes something else never reaches the passes."""

from __future__ import annotations

from pathlib import Path

from optkit.errors import ExportError
from optkit.runners.base import Feeds, Runner
from optkit.runners.ort_runner import OrtRunner
from optkit.validation.outputs import check_close


def check_export(model_path: Path, src_runner: Runner, batch: Feeds, atol: float, rtol: float, threads: int) -> float:
    """Run ``model_path`` in ONNX Runtime and ``src_runner`` on ``batch`` and compare them.

    Args:
        model_path: the exported ``.onnx`` file.
        src_runner: the source model's runner (the reference).
        batch: one validation batch, ``{input name: array}``.
        atol / rtol: tolerances (the recipe's ``export.check_atol`` / ``export.check_rtol``).
        threads: ONNX Runtime intra-op threads.

    Returns:
        The largest absolute difference over all float outputs (recorded as
        ``export_check_max_abs_error``).

    Raises:
        ExportError: the export does not run in ONNX Runtime, an output is missing or has another
            shape, or outputs are not close (every failing output is named).
    """
    try:
        onnx_out = OrtRunner(model_path, threads).infer(batch)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(
            f"the exported model does not run in ONNX Runtime: {str(exc).splitlines()[0][:300]}",
            "try another --opset",
        ) from exc
    return check_close(
        src_runner.infer(batch),
        onnx_out,
        atol,
        rtol,
        ExportError,
        "the exporter mistraced the model; try --opset or a torch.export (.pt2) source",
        batch.get("attention_mask"),
    )
