"""The recipe config of the ``quantize-static`` pass (its ``run`` is :mod:`optkit.passes.quantize_static`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from optkit.strict import StrictModel


class QuantizeStaticPass(StrictModel):
    """Static int8 quantization with calibration (``onnxruntime.quantization.quantize_static``)."""

    type: Literal["quantize-static"] = Field(description="selects this pass: static int8 quantization")
    calibration_data: str | None = Field(
        None, description=".npz/.conll/.txt; null = validation data (warned); --calibration-data overrides"
    )
    calibration_samples: int = Field(200, ge=1, description="calibration examples used (the first ones)")
    calibrate_method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="how activation ranges are computed from the calibration data"
    )
    quant_format: Literal["qdq", "qoperator"] = Field(
        "qdq", description="qdq: QuantizeLinear/DequantizeLinear around float ops; qoperator: quantized ops"
    )
    per_channel: bool = Field(True, description="one weight scale per output channel")
    activation_type: Literal["quint8", "qint8"] = Field("quint8", description="int8 activation type")
    weight_type: Literal["qint8", "quint8"] = Field("qint8", description="int8 weight type")
    op_types: list[str] | None = Field(None, description="op types to quantize; null = ORT default")
    nodes_to_exclude: list[str] = Field(default_factory=list, description="node names kept in float32")
    allow_fp32: bool = Field(
        False,
        description="accept a final model with no int8 matrix product or convolution left "
        "(else the int8_compute_ops gate fails)",
    )
