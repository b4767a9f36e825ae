"""fp16 safety: convert, run the fp16 model on validation data, find the nodes where NaN/Inf first
appear (fp16 overflows above 65504 become Inf), keep those nodes in float32 and convert again.

The check runs the graph *as written* (every tensor made an output, optimizations off): ONNX
Runtime's CPU provider computes many fp16 ops in float32 and drops the Casts between them, which
hides an overflow that a CUDA run of the same model would hit, so validating fp16 outputs on CPU
alone is not enough.

A node is an *offender* when one of its outputs holds a non-finite value in the fp16 model, that
tensor is finite in the float32 model (so fp16 caused it; a model that uses ``-inf`` on purpose is
left alone), and every input of the node is finite (it is where the problem starts, not where it
spreads to). An offender that the converter inserted (a ``Cast`` to fp16 of a large float32 value)
is fixed by keeping its consumers in float32. Repeats until no offender is left or
``max_block_rounds`` is reached.
"""

from __future__ import annotations

import time

import numpy as np
import onnx

from optkit.errors import PassError
from optkit.pass_context import PassContext
from optkit.recipe import Fp16Pass
from optkit.records.figures import Figure
from optkit.search.probe import run_probe, with_outputs

PROBE_BATCH = 4
#: name suffixes ``convert_float_to_float16`` gives the Casts it inserts after a blocked node's
#: float32 output (to fp16) and before a blocked consumer (back to float32)
DOWN, UP = "_cast_to_fp16_node", "_cast_to_fp32_node"


def convert_guarded(
    model: onnx.ModelProto, config: Fp16Pass, op_block: list[str], ctx: PassContext
) -> tuple[onnx.ModelProto, dict[str, Figure], list[str]]:
    """Convert ``model`` (float32, nodes named) to fp16, blocking overflowing nodes automatically.

    Returns:
        ``(fp16 model, details, warnings)``; ``details`` has ``node_block_list`` (final),
        ``auto_blocked`` (nodes added) and ``rounds`` (per round: offenders found, nodes blocked).

    Raises:
        PassError: the converter fails.
    """
    start = time.perf_counter()
    block = list(config.node_block_list)
    rounds: list[Figure] = []
    warnings: list[str] = []
    batches = _batches(ctx, config.check_samples)
    reference: dict[str, bool] | None = None
    originals = {n.name for n in model.graph.node}
    for number in range(1, config.max_block_rounds + 1):
        converted = _convert(model, config, op_block, block)
        if not batches:
            warnings.append("no validation data: fp16 overflow was not checked")
            break
        try:
            finite = _finite_map(converted, batches, ctx, "fp16-probe")
            if all(finite.values()):
                break
            if reference is None:
                reference = _finite_map(model, batches, ctx, "fp32-probe")
        except PassError as exc:
            if config.auto_block:
                raise
            warnings.append(f"fp16 overflow not checked: {exc.message}")
            break
        offenders = _offenders(converted, finite, reference)
        if not offenders:
            break  # every NaN/Inf is in the float32 model too: the model's own, not fp16's
        if not config.auto_block:
            raise PassError(
                f"fp16 overflows to Inf/NaN at {', '.join(n.name for n in offenders[:5])} on the validation data "
                "(in the graph as written; ONNX Runtime's CPU kernels compute many fp16 ops in float32 and hide "
                "it, a CUDA run would not)",
                "set fp16.auto_block: true, or add these nodes to fp16.node_block_list",
            )
        added = _to_block(converted, offenders, originals, set(block))
        rounds.append(
            {
                "round": number,
                "offenders": [{"node": n.name, "op_type": n.op_type} for n in offenders],
                "blocked": added,
            }
        )
        ctx.progress(
            f"fp16 round {number}: NaN/Inf first produced by "
            f"{', '.join(n.name for n in offenders) or 'no node found'}; keeping {added or 'nothing'} in fp32"
        )
        if not added:
            warnings.append(
                "fp16 produces NaN/Inf that keeping nodes in float32 did not remove "
                f"(offenders: {[n.name for n in offenders]}); check the source model"
            )
            break
        block += added
        if time.perf_counter() - start > config.search_budget_s:
            warnings.append(f"fp16 auto_block budget of {config.search_budget_s:g} s exhausted")
            converted = _convert(model, config, op_block, block)
            break
    else:
        converted = _convert(model, config, op_block, block)  # with the last round's blocks too
        warnings.append(f"fp16 auto_block stopped after {config.max_block_rounds} rounds; NaN/Inf may remain")
    auto = [n for n in block if n not in config.node_block_list]
    if auto:
        warnings.append(f"kept {len(auto)} node(s) in float32 because fp16 overflowed there: {', '.join(auto[:10])}")
    details: dict[str, Figure] = {
        "node_block_list": block,
        "auto_blocked": auto,
        "rounds": rounds,
        "checked_samples": sum(len(next(iter(b.values()))) for b in batches),
    }
    return converted, details, warnings


def _batches(ctx: PassContext, samples: int) -> list:
    if ctx.validation is None:
        return []
    return ctx.validation.batches(PROBE_BATCH)[: max(1, -(-samples // PROBE_BATCH))]


def _convert(model: onnx.ModelProto, config: Fp16Pass, op_block: list[str], block: list[str]) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # the converter edits its argument
    try:
        converted = convert_float_to_float16(
            copy,
            keep_io_types=config.keep_io_types,
            op_block_list=op_block,
            node_block_list=block or None,
            disable_shape_infer=False,
        )
    except Exception as exc:
        raise PassError(
            f"fp16 conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            "add the failing op type to fp16.op_block_list",
        ) from exc
    drop_round_trips(converted)
    return converted


def drop_round_trips(model: onnx.ModelProto) -> int:
    """Remove float32 → float16 → float32 Cast pairs, in place; returns how many were removed.

    ``convert_float_to_float16`` casts the output of every blocked node to fp16 and back to fp32
    when the consumer is blocked too, so a value above 65504 still overflows between two float32
    nodes. Only the converter's own pairs (named ``*_cast_to_fp16_node`` then
    ``*_cast_to_fp32_node``, whose source is a float32 node output) are removed; consumers of the
    fp32 Cast read the original float32 tensor instead (exact, never worse). Subgraphs are left alone.
    """
    graph = model.graph
    outputs = {o.name for o in graph.output}
    producers = {o: n for n in graph.node for o in n.output}
    removed = 0
    for node in list(graph.node):
        if node.op_type != "Cast" or _cast_to(node) != onnx.TensorProto.FLOAT or not node.name.endswith(UP):
            continue
        first = producers.get(node.input[0])
        if (
            first is None
            or first.op_type != "Cast"
            or _cast_to(first) != onnx.TensorProto.FLOAT16
            or not first.name.endswith(DOWN)
        ):
            continue  # only the converter's own pair around a blocked node's float32 output
        source = producers.get(first.input[0])
        if source is None or node.output[0] in outputs:
            continue  # a graph input is cast by design (keep_io_types); only fp32 node outputs are rewired
        for consumer in graph.node:
            for index, name in enumerate(consumer.input):
                if name == node.output[0]:
                    consumer.input[index] = first.input[0]
        graph.node.remove(node)
        removed += 1
        if first.output[0] not in outputs and not any(first.output[0] in n.input for n in graph.node):
            graph.node.remove(first)
    return removed


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _finite_map(model: onnx.ModelProto, batches: list, ctx: PassContext, name: str) -> dict[str, bool]:
    """``{tensor name: every value finite}`` for every floating node output, over ``batches``."""
    names = [o for n in model.graph.node for o in n.output if o]
    finite: dict[str, bool] = {}

    def visit(tensors: dict[str, np.ndarray]) -> None:
        for key, value in tensors.items():
            if np.issubdtype(value.dtype, np.floating):
                finite[key] = finite.get(key, True) and bool(np.isfinite(value).all())

    try:
        run_probe(with_outputs(model, names), ctx.workdir / f"{name}.onnx", batches, ctx.threads, visit)
    except Exception as exc:
        raise PassError(
            f"could not run the {name.split('-')[0]} model to check for overflow: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            "set fp16.auto_block: false and block nodes by hand",
        ) from exc
    return finite


def _offenders(model: onnx.ModelProto, finite: dict[str, bool], reference: dict[str, bool]) -> list[onnx.NodeProto]:
    found = []
    for node in model.graph.node:
        bad = [o for o in node.output if finite.get(o) is False and reference.get(o, True)]
        if bad and all(finite.get(i, True) for i in node.input if i):
            found.append(node)
    return found


def _to_block(
    model: onnx.ModelProto, offenders: list[onnx.NodeProto], originals: set[str], blocked: set[str]
) -> list[str]:
    """Original node names to keep in float32 for these offenders (consumers for inserted Casts)."""
    added: list[str] = []
    for node in offenders:
        targets = (
            [node.name]
            if node.name in originals
            else [c.name for c in model.graph.node if set(node.output) & set(c.input) and c.name in originals]
        )
        for name in targets:
            if name not in blocked and name not in added:
                added.append(name)
    return added
