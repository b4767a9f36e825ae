"""float32 → float16 (``onnxruntime.transformers.float16.convert_float_to_float16``).

``keep_io_types`` keeps float32 inputs/outputs (Casts at the edges). ``op_block_list`` defaults to
onnxruntime's list of ops that are unsafe or unsupported in fp16. With ``auto_block`` (default) the
converted model runs on validation data and nodes where fp16 overflows (|x| > 65504 → Inf) or
yields NaN are kept in float32 automatically (:mod:`optkit.search.fp16_guard`). On CPU, ONNX
Runtime has few fp16 kernels and falls back through Casts, so fp16 is usually slower there: claim
fp16 speed only on CUDA.
"""

from __future__ import annotations

from pathlib import Path

from optkit.onnx_io import load_onnx, name_nodes, op_counts, save_onnx
from optkit.pass_context import PassContext, PassOutcome
from optkit.recipe import Fp16Pass
from optkit.search.fp16_guard import convert_guarded


def run(model_path: Path, config: Fp16Pass, ctx: PassContext) -> PassOutcome:
    """Convert to fp16; ``details`` records the block lists, nodes blocked automatically and how
    many Casts were inserted.

    Raises:
        PassError: the converter fails, or the model cannot be run to check for overflow.
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    model = load_onnx(model_path)
    name_nodes(model)
    casts_before = op_counts(model).get("Cast", 0)
    block = config.op_block_list if config.op_block_list is not None else list(DEFAULT_OP_BLOCK_LIST)
    converted, guard, warnings = convert_guarded(model, config, block, ctx)
    out = ctx.output_path("fp16")
    save_onnx(converted, out, ctx.external_threshold_mb)
    details = {
        "keep_io_types": config.keep_io_types,
        "op_block_list": block,
        "node_block_list": guard["node_block_list"],
        "auto_block": config.auto_block,
        "auto_blocked": guard["auto_blocked"],
        "overflow_rounds": guard["rounds"],
        "casts_added": op_counts(converted).get("Cast", 0) - casts_before,
    }
    return PassOutcome(out, details, warnings)
