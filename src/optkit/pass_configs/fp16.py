"""The recipe config of the ``fp16`` pass (its ``run`` is :mod:`optkit.passes.fp16`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from optkit.strict import StrictModel


class Fp16Pass(StrictModel):
    """float32 → float16 conversion (``onnxruntime.transformers.float16``)."""

    type: Literal["fp16"] = Field(description="selects this pass: float32 → float16 conversion")
    keep_io_types: bool = Field(True, description="keep float32 model inputs and outputs")
    op_block_list: list[str] | None = Field(
        None, description="op types kept in float32; null = onnxruntime's default list"
    )
    node_block_list: list[str] = Field(
        default_factory=list, description="node names kept in float32 (auto_block adds to them)"
    )
    auto_block: bool = Field(
        True,
        description="run the fp16 model on validation data; nodes that overflow fp16 (|x| > 65504) or "
        "produce NaN/Inf are added to node_block_list and the conversion is retried",
    )
    max_block_rounds: int = Field(10, ge=1, description="conversion retries of auto_block")
    search_budget_s: float = Field(
        900.0, gt=0, description="wall-time budget of auto_block, seconds; --search-budget overrides"
    )
    check_samples: int = Field(64, ge=1, description="validation samples auto_block runs")
