"""One call of ONNX Runtime's static int8 quantizer (``onnxruntime.quantization.quantize_static``) in
QDQ format, for the static candidates of the int8 search (:mod:`optkit.search.int8_search`).

Activation ranges come from calibration batches through ORT's calibrators
(``CalibrationMethod.MinMax`` / ``Percentile`` / ``Entropy``); weights are quantized per channel
(qint8) and activations as quint8, ORT's defaults for QDQ on CPU. On a fused transformer ORT's QDQ
quantizer handles the MatMuls; the fused ``Attention`` has no QDQ form in ONNX Runtime's registry
(``onnxruntime/quantization/registry.py``: ``QDQRegistry``) and stays fp32. Shape inference cannot
see through com.microsoft ops, hence ``DefaultTensorType`` = FLOAT (as for the dynamic quantizer).
"""

from __future__ import annotations

import contextlib
import errno
import io
from pathlib import Path

import numpy as np

from optkit.errors import PassError
from optkit.onnx_io import load_onnx, op_counts
from optkit.quiet_logs import quiet_logs
from optkit.runners.base import Feeds
from optkit.search.float_outputs import rewrite_saved

CALIBRATE_METHODS = ("minmax", "percentile", "entropy")
#: op types of a QDQ model that carry int8 (``{op: count}`` in a candidate's row)
STATIC_OPS = ("QuantizeLinear", "DequantizeLinear")


def quantize_static_qdq(
    model_path: Path,
    out: Path,
    batches: list[Feeds],
    calibrate_method: str,
    per_channel: bool,
    op_types: list[str] | None,
    nodes_to_exclude: list[str],
    symmetric_activations: bool = False,
    reduce_range: bool = False,
    float_outputs: bool = True,
) -> dict[str, int]:
    """Write the static QDQ int8 ``model_path`` to ``out``, calibrated on ``batches``.

    Args:
        batches: model inputs, ``{input: (B, ...) array}`` per batch; cast to the graph's input dtypes.
        calibrate_method: ``minmax``, ``percentile`` or ``entropy`` (ORT's ``CalibrationMethod``).
        op_types: op types to quantize; None = ORT's QDQ default.
        symmetric_activations: qint8 activations with zero point 0 (ORT's ``ActivationSymmetric``);
            False = quint8 with a zero point (the default, ORT's fast u8s8 path on x86).
        reduce_range: 7-bit weights (ORT's ``reduce_range``): on x86 without VNNI the u8s8 kernels
            add pairs of products in saturating int16, which full-range per-channel weights overflow.
        float_outputs: bypass the Q/DQ pairs between the last matrix product or convolution and the
            graph outputs (:func:`optkit.search.float_outputs.keep_outputs_float`): 8-bit logits and
            probabilities turn near-ties into exact ties.

    Returns:
        ``{"QuantizeLinear": n, "DequantizeLinear": m}`` in the output.

    Raises:
        PassError: the quantizer fails. OSError: the disk is full (ENOSPC/EDQUOT).
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    graph_inputs = onnx.load(str(model_path), load_external_data=False).graph.input
    dtypes = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in graph_inputs}

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [{k: np.ascontiguousarray(v, dtype=dtypes[k]) for k, v in b.items() if k in dtypes} for b in batches]
            )

        def get_next(self):
            return next(self.batches, None)

    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[calibrate_method]
    try:
        # the quantizer logs advice through the root logger; the histogram calibrators print() progress
        with quiet_logs(), contextlib.redirect_stdout(io.StringIO()):
            ort_quantize_static(
                str(model_path),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=nodes_to_exclude or None,
                calibrate_method=method,
                use_external_data_format=model_path.with_suffix(".onnx.data").exists(),
                extra_options={
                    "DefaultTensorType": onnx.TensorProto.FLOAT,
                    "ActivationSymmetric": symmetric_activations,
                },
            )
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise PassError(
            f"static quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            "check that the model and its external data are readable",
        ) from exc
    except Exception as exc:  # the quantizer and calibrators raise assorted errors
        raise PassError(
            f"static quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            "leave search_space.static_methods empty, or exclude the failing node",
        ) from exc
    quantized = load_onnx(out)  # the weights, external data included, now in memory
    if float_outputs:
        rewrite_saved(quantized, out)
    return {k: v for k, v in op_counts(quantized).items() if k in STATIC_OPS}


__all__ = ["CALIBRATE_METHODS", "STATIC_OPS", "quantize_static_qdq"]
