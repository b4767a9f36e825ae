"""The recipe config of the ``simplify`` pass (its ``run`` is :mod:`optkit.passes.simplify`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from optkit.strict import StrictModel


class SimplifyPass(StrictModel):
    """onnxsim (constant folding, shape inference, graph optimizers). If onnxsim fails, the model
    is kept unchanged and the reason is recorded in the report."""

    type: Literal["simplify"] = Field(description="selects this pass: onnxsim simplification")
    perform_optimization: bool = Field(
        True,
        description="run onnxsim's graph optimizers; transformer recipes turn them off because "
        "MatMul+Add→Gemm rewrites hide the patterns ORT's attention fusion matches",
    )
    skipped_optimizers: list[str] = Field(
        default_factory=list,
        description="names of onnxoptimizer passes onnxsim skips "
        "(e.g. fuse_matmul_add_bias_into_gemm); [] = run them all",
    )
