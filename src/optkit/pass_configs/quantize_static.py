"""The recipe config of the ``quantize-static`` pass (its ``run`` is :mod:`optkit.passes.quantize_static`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from optkit.strict import StrictModel

Activations = Literal["asymmetric", "symmetric"]
CalibrateMethod = Literal["minmax", "percentile", "entropy"]


def _activations() -> list[Activations]:
    return ["asymmetric", "symmetric"]


def _methods() -> list[CalibrateMethod]:
    return ["minmax", "percentile", "entropy"]


class StaticSearchSpace(StrictModel):
    """What the accuracy-aware static int8 search tries (:mod:`optkit.search.static_search`).

    Stage ``static``: every ``activations × per_channel × reduce_range × calibrate_methods``
    combination, in that nesting and in the listed order, ordered by expected speed, then
    simplicity: asymmetric quint8 activations first (ONNX Runtime's u8s8 kernels are its fast path
    on x86), per-channel weights first (the same QLinearConv speed, and the accuracy depthwise
    convolutions need), full 8-bit weights before 7-bit (``reduce_range``, no speed cost), MinMax
    before percentile before entropy (cheapest calibration first). The first candidate that meets the
    accuracy gates is chosen and the search stops. Stage ``fp32 fallback`` (only when none passed):
    the most accurate stage-1 candidate with its most sensitive nodes kept in float32, depthwise
    convolutions first, then by measured sensitivity; 1, 2, 4, … nodes until the gates hold, then a
    bisection keeps as few as the gates allow.
    """

    activations: list[Activations] = Field(
        default_factory=_activations,
        min_length=1,
        description="activation encodings tried: asymmetric = quint8 with a zero point, "
        "symmetric = qint8, zero point 0 (ORT ActivationSymmetric)",
    )
    per_channel: list[bool] = Field(
        default_factory=lambda: [True, False], min_length=1, description="per-channel weight scales tried"
    )
    reduce_range: list[bool] = Field(
        default_factory=lambda: [False, True],
        min_length=1,
        description="7-bit weights tried (same speed; for x86 CPUs without VNNI, whose u8s8 kernels "
        "saturate on full-range per-channel weights)",
    )
    calibrate_methods: list[CalibrateMethod] = Field(
        default_factory=_methods,
        min_length=1,
        description="ORT calibrators tried for the activation ranges",
    )
    node_fallback: bool = Field(
        True, description="when no candidate passes: keep the most sensitive nodes in fp32 (depthwise first)"
    )
    sensitivity_samples: int = Field(16, ge=1, description="validation samples used to rank node sensitivity")


class QuantizeStaticPass(StrictModel):
    """Static int8 quantization with calibration (``onnxruntime.quantization.quantize_static``).

    With ``search: true`` the settings ``calibrate_method``, ``per_channel``, ``activation_type``
    and ``nodes_to_exclude`` are ignored: optkit searches ``search_space`` for the first
    candidate that meets the recipe's accuracy gates (:mod:`optkit.search.static_search`).
    """

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
    float_outputs: bool = Field(
        True,
        description="QDQ only: no Q/DQ on the output tail (the graph outputs, back through a Softmax, a "
        "bias Add or a reshape of the scores to the last Conv/Gemm/MatMul): 8-bit logits or probabilities "
        "turn near-ties into exact ties that flip labels; the int8 product still runs (ORT's float-output QGemm)",
    )
    nodes_to_exclude: list[str] = Field(default_factory=list, description="node names kept in float32")
    search: bool = Field(
        False,
        description="true: search search_space against the recipe's accuracy gates (the settings "
        "calibrate_method, per_channel, activation_type and nodes_to_exclude above are then ignored)",
    )
    search_space: StaticSearchSpace = Field(
        default_factory=StaticSearchSpace, description="what the search tries (only with search: true)"
    )
    search_budget_s: float = Field(
        900.0, gt=0, description="wall-time budget of the search, seconds; --search-budget overrides"
    )
    allow_fp32: bool = Field(
        False,
        description="accept a final model with no int8 matrix product or convolution left "
        "(else the int8_compute_ops gate fails)",
    )
