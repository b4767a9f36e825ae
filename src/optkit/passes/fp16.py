"""float32 → float16 (``onnxruntime.transformers.float16.convert_float_to_float16``).

``keep_io_types`` keeps float32 inputs/outputs (Casts at the edges). ``op_block_list`` defaults to
onnxruntime's list of ops that are unsafe or unsupported in fp16. On CPU, ONNX Runtime has few fp16
kernels and falls back through Casts, so fp16 is usually slower there: claim fp16 speed only on CUDA.
"""

from __future__ import annotations

from pathlib import Path

from optkit.errors import PassError
from optkit.onnx_io import load_onnx, op_counts, save_onnx
from optkit.passes.base import PassContext, PassOutcome
from optkit.recipe import Fp16Pass


def run(model_path: Path, config: Fp16Pass, ctx: PassContext) -> PassOutcome:
    """Convert to fp16; ``details`` records the block lists and how many Casts were inserted.

    Raises:
        PassError: the converter fails.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = load_onnx(model_path)
    casts_before = op_counts(model).get("Cast", 0)
    block = config.op_block_list if config.op_block_list is not None else list(DEFAULT_OP_BLOCK_LIST)
    try:
        converted = convert_float_to_float16(model, keep_io_types=config.keep_io_types, op_block_list=block,
                                             node_block_list=config.node_block_list or None,
                                             disable_shape_infer=False)
    except Exception as exc:
        raise PassError(f"fp16 conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                        "add the failing op type to fp16.op_block_list") from exc
    out = ctx.output_path("fp16")
    save_onnx(converted, out, ctx.external_threshold_mb)
    details = {"keep_io_types": config.keep_io_types, "op_block_list": block,
               "node_block_list": config.node_block_list,
               "casts_added": op_counts(converted).get("Cast", 0) - casts_before}
    return PassOutcome(out, details)
