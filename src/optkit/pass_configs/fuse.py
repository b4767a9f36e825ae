"""The recipe config of the ``fuse`` pass (its ``run`` is :mod:`optkit.passes.fuse`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from optkit.strict import StrictModel


class FusePass(StrictModel):
    """ONNX Runtime transformer fusions (``onnxruntime.transformers.optimizer.optimize_model``).

    ``model_type``, ``num_heads`` and ``hidden_size`` default to the source model's config.
    """

    type: Literal["fuse"] = Field(description="selects this pass: ONNX Runtime transformer fusions")
    model_type: str = Field(
        "auto",
        description="'auto' (from the source model's config.json) or e.g. 'bert'; "
        "a type ORT does not know is fused as 'bert'",
    )
    num_heads: int = Field(0, ge=0, description="attention heads; 0 = from the model config")
    hidden_size: int = Field(0, ge=0, description="hidden size; 0 = from the model config")
    opt_level: int = Field(0, ge=0, le=99, description="ORT graph optimization level applied too (0 = none)")
    require_attention: bool = Field(
        False, description="fail (instead of warn) when a transformer gets 0 Attention fusions"
    )


ATTENTION_OPS = ("Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention")
