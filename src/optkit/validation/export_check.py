"""The post-export check: the freshly exported ONNX model and the source model run on one real batch;
every float output, matched by name, must be allclose (``|onnx - src| <= atol + rtol * |src|``, at
real tokens: padded positions by ``attention_mask`` are not compared), so an
exporter that "succeeds with a warning" but computes something else never reaches the passes.

Where they differ, the message names each output and its largest difference, then the likely
cause (:func:`likely_causes`): a source that is not deterministic (it is run a second time on the
same batch), dropout left active (training mode), a reference that runs another attention
implementation than the exported one (SDPA vs eager), half-precision weights.

A source that is random must not pass by luck: an export holding ``Dropout`` nodes in training
mode (what ``torch.jit.trace`` of a module in training mode leaves; ONNX Runtime then drops
units at random too) is refused before any comparison, and a source whose traits show active
dropout or training mode is run twice more on the batch even when the outputs matched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from optkit.errors import ExportError
from optkit.onnx_io import all_graphs
from optkit.runners.base import Feeds, Runner
from optkit.runners.ort_runner import OrtRunner
from optkit.validation.outputs import check_close

#: the fix for a model left in training mode
_EVAL_FIX = "put the model in inference mode before saving or tracing it (model.eval())"

#: the exporter's own hint, when no likelier cause is found
MISTRACED = "the exporter mistraced the model; try --opset or a torch.export (.pt2) source"


def check_export(
    model_path: Path,
    src_runner: Runner,
    batch: Feeds,
    atol: float,
    rtol: float,
    threads: int,
    traits: Callable[[], dict[str, Any]] | None = None,
) -> float:
    """Run ``model_path`` in ONNX Runtime and ``src_runner`` on ``batch`` and compare them.

    Args:
        model_path: the exported ``.onnx`` file.
        src_runner: the source model's runner (the reference).
        batch: one validation batch, ``{input name: array}``.
        atol / rtol: tolerances (the recipe's ``export.check_atol`` / ``export.check_rtol``).
        threads: ONNX Runtime intra-op threads.
        traits: ``() -> {fact: value}`` of the source model
            (:meth:`~optkit.sources.base.SourceModel.traits`), asked when outputs differ, when
            the graph has training-mode Dropout, and after a match (active dropout or training
            mode there means two more source runs).

    Returns:
        The largest absolute difference over all float outputs (recorded as
        ``export_check_max_abs_error``).

    Raises:
        ExportError: the export does not run in ONNX Runtime, an output is missing or has another
            shape, or outputs are not close (every failing output is named); the graph has
            Dropout nodes in training mode; or a source with active dropout gives other outputs
            when run again on the same batch (it matched by luck).
    """
    random_dropouts = training_dropouts(model_path)
    if random_dropouts:
        causes = likely_causes(0.0, traits() if traits else {})
        raise ExportError(
            f"the exported model has {random_dropouts} Dropout node(s) in training mode (they drop units at "
            "random in ONNX Runtime too, so no output can be validated)"
            + (f"; likely: {'; '.join(c for c, _ in causes)}" if causes else ""),
            causes[0][1] if causes else _EVAL_FIX,
        )
    try:
        onnx_out = OrtRunner(model_path, threads).infer(batch)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(
            f"the exported model does not run in ONNX Runtime: {str(exc).splitlines()[0][:300]}",
            "try another --opset",
        ) from exc
    reference = src_runner.infer(batch)
    try:
        worst = check_close(reference, onnx_out, atol, rtol, ExportError, MISTRACED, batch.get("attention_mask"))
    except ExportError as exc:
        if "computes different outputs" not in exc.message:
            raise  # a shape or name mismatch: no tolerance question
        causes = likely_causes(_rerun_difference(src_runner, batch, reference), traits() if traits else {})
        if not causes:
            raise
        raise ExportError(f"{exc.message}; likely: {'; '.join(c for c, _ in causes)}", causes[0][1]) from exc
    facts = traits() if traits else {}
    if facts.get("dropout") or facts.get("training"):
        # the outputs matched, but a random source can match once by luck: two more runs
        rerun = max(_rerun_difference(src_runner, batch, reference) for _ in range(2))
        if rerun > atol:
            causes = likely_causes(rerun, facts)
            raise ExportError(f"the exported model matched the source once, but {causes[0][0]}", causes[0][1])
    return worst


def training_dropouts(model_path: Path) -> int:
    """How many ``Dropout`` nodes of the ONNX graph (subgraphs included) run in training mode:
    their third input, ``training_mode``, is a constant true (a ``Constant`` node or an
    initializer) and whose ``ratio`` is not a constant 0. ONNX Dropout-13 drops at random when it is
    true (onnx.ai Operators: Dropout)."""
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # not a readable ONNX file: ONNX Runtime's own error names it next
        return 0
    found = 0
    for graph in all_graphs(proto.graph):
        consts = {i.name: i for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        consts[node.output[0]] = attr.t
        found += sum(
            1
            for node in graph.node
            if node.op_type == "Dropout"
            and len(node.input) > 2
            and node.input[2] in consts
            and bool(np.asarray(numpy_helper.to_array(consts[node.input[2]])).any())
            and not _zero_ratio(node, consts)
        )
    return found


def _zero_ratio(node, consts) -> bool:
    """A Dropout whose ``ratio`` (input 1) is a constant 0 is the identity even in training mode; a
    missing ratio is 0.5 (the operator's default)."""
    from onnx import numpy_helper

    if len(node.input) < 2 or not node.input[1] or node.input[1] not in consts:
        return False
    return not bool(np.asarray(numpy_helper.to_array(consts[node.input[1]])).any())


def _rerun_difference(src_runner: Runner, batch: Feeds, first: Feeds) -> float:
    """The largest difference between two source runs on the same ``batch`` (0 for a
    deterministic model; inf when an output changes shape)."""
    second = src_runner.infer(batch)
    worst = 0.0
    for name, a in first.items():
        b = second.get(name)
        if b is None or b.shape != a.shape:
            return float("inf")
        if np.issubdtype(a.dtype, np.floating) and a.size:
            worst = max(worst, float(np.nanmax(np.abs(a.astype(np.float64) - b))))
    return worst


def likely_causes(rerun_difference: float, traits: dict[str, Any]) -> list[tuple[str, str]]:
    """Likely causes of an export mismatch, most likely first, each as ``(cause, fix)``.

    Args:
        rerun_difference: the largest difference between two source runs on the same batch
            (:func:`_rerun_difference`); > 0 means the source itself is not deterministic.
        traits: the source's facts (:meth:`~optkit.sources.base.SourceModel.traits`).
    """
    causes = []
    dropout, training = int(traits.get("dropout", 0) or 0), int(traits.get("training", 0) or 0)
    if rerun_difference > 0 or dropout:
        what = (
            f"the source model is not deterministic (two runs on the same batch differ by up to {rerun_difference:.3g})"
            if rerun_difference > 0
            else "the source model has active dropout"
        )
        if dropout:
            what += f": {dropout} dropout layer(s)/op(s) active" + (
                f", {training} module(s) in training mode" if training else ""
            )
        causes.append(
            (
                what,
                "put the model in inference mode before saving or tracing it (model.eval(); "
                "torch.jit.trace in training mode bakes dropout into the graph)",
            )
        )
    elif training:
        causes.append(
            (f"{training} module(s) of the source are in training mode", "call model.eval() before saving it")
        )
    if traits.get("attention"):
        causes.append(
            (
                f"the reference runs {traits['attention']} while the export uses eager attention "
                "(attention implementations differ in rounding)",
                "raise export.check_atol to the difference shown if it is rounding, or load the model "
                "with attn_implementation='eager'",
            )
        )
    if traits.get("float16"):
        causes.append(
            (
                "the source has float16/bfloat16 weights (half-precision rounding)",
                "export a float32 copy of the model, or raise export.check_atol",
            )
        )
    return causes
