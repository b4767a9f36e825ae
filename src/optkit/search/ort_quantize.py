"""One call of ONNX Runtime's dynamic int8 quantizer (``onnxruntime.quantization.quantize_dynamic``).

Shared by the ``quantize-dynamic`` pass and the accuracy-aware search (:mod:`optkit.search.int8_search`),
which calls it once per candidate; it lives in search/ so that the search never imports passes/.

Works on fused models: shape inference cannot see through com.microsoft ops, which makes the
quantizer raise ``Unable to find data type for weight_name=...``; passing
``extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}`` (onnxruntime quantization docs)
tells it to assume float for such tensors.
"""

from __future__ import annotations

import errno
from pathlib import Path

from optkit.errors import PassError
from optkit.onnx_io import load_onnx, op_counts
from optkit.pass_configs.quantize_dynamic import QUANTIZED_OP_PREFIXES
from optkit.quiet_logs import quiet_logs


def quantize(
    model_path: Path,
    out: Path,
    weight_type: str,
    per_channel: bool,
    reduce_range: bool,
    op_types: list[str] | None,
    nodes_to_exclude: list[str],
) -> dict[str, int]:
    """Write the dynamically quantized ``model_path`` to ``out``.

    The quantizer's advice (logged through the root logger) is silenced for the call only.

    Returns:
        ``{quantized op type: count}`` in the output (e.g. ``{"QAttention": 6, "MatMulInteger": 37}``).

    Raises:
        PassError: onnxruntime's quantizer fails.
        OSError: the disk is full (ENOSPC/EDQUOT), reported as such by the CLI (exit 2).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with quiet_logs():  # the quantizer logs advice through the root logger
            quantize_dynamic(
                str(model_path),
                str(out),
                op_types_to_quantize=op_types,
                per_channel=per_channel,
                reduce_range=reduce_range,
                weight_type={"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[weight_type],
                nodes_to_exclude=nodes_to_exclude or None,
                use_external_data_format=model_path.with_suffix(".onnx.data").exists(),
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk is reported as such by the CLI (exit 2), not as a quantizer problem
        raise PassError(
            f"dynamic quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            "check that the model and its external data are readable",
        ) from exc
    except Exception as exc:  # the quantizer raises assorted errors
        raise PassError(
            f"dynamic quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            "try quantize-dynamic.op_types: [MatMul] or exclude the failing node",
        ) from exc
    return {k: v for k, v in op_counts(load_onnx(out)).items() if k.startswith(QUANTIZED_OP_PREFIXES)}
