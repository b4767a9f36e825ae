"""TensorFlow / Keras → ONNX with tf2onnx, always through a SavedModel.

Keras 3 breaks ``tf2onnx.convert.from_keras`` (``KeyError: 'keras_tensor_…'``); exporting the Keras
model as a SavedModel (``model.export``) and converting that works. tf2onnx runs its documented
command line (``tf2onnx.convert``'s ``main``) in this process, which is the source's confined
worker: a child process would not see its own ``/proc/self`` there (only the worker's is granted),
and TensorFlow aborts when it cannot read ``/proc/self/cmdline``. The ONNX inputs and outputs are
then given the source model's names by name (:func:`rename_by_name`), never by position: tf2onnx
orders a signature's inputs by name, not as the Keras model lists them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from pathlib import Path

from optkit.errors import ExportError
from optkit.onnx_io import load_onnx, save_onnx
from optkit.pass_context import PassOutcome
from optkit.recipe import ExportConfig
from optkit.records.figures import Figure
from optkit.runners.base import Feeds
from optkit.sources.tf_source import SERVING, TFSource


def export(
    source: TFSource, example: Feeds, config: ExportConfig, out_path: Path, external_threshold_mb: float = 1800.0
) -> PassOutcome:
    """Convert to ONNX at ``config.opset``.

    Raises:
        ExportError: ``model.export`` or tf2onnx fails (tf2onnx's last error line in the message).
    """
    saved = source.path
    if source.kind == "keras":
        saved = out_path.parent / "savedmodel"
        try:
            source.model.export(str(saved), verbose=False)
        except Exception as exc:
            raise ExportError(
                f"Keras could not export a SavedModel: {str(exc).splitlines()[0][:300]}",
                "check that the model can be called on its inputs",
            ) from exc
    info = source.info
    arguments = [
        "--saved-model",
        str(saved),
        "--output",
        str(out_path),
        "--opset",
        str(config.opset),
        "--signature_def",
        SERVING,
    ]
    failure = _run_tf2onnx(arguments)
    if failure is not None or not out_path.exists():
        raise ExportError(
            f"tf2onnx failed: {(failure or 'no model written')[:300]}",
            "try another --opset; see tf2onnx's supported ops",
        )
    model = load_onnx(out_path)
    renamed = rename_by_name(model.graph, info.input_names, info.output_names)
    if renamed:
        save_onnx(model, out_path, external_threshold_mb)
    details: dict[str, Figure] = {
        "exporter": "tf2onnx (SavedModel)",
        "opset": config.opset,
        "source_kind": source.kind,
        "nodes": len(model.graph.node),
    }
    if renamed:
        details["renamed"] = renamed
    return PassOutcome(out_path, details)


def rename_by_name(graph, inputs: list[str], outputs: list[str]) -> dict[str, str]:
    """Give the graph's inputs and outputs the source model's names, matching them by name: a
    graph name equal to a source name, or equal once tf2onnx's tensor suffix (``:0``) is dropped.
    A renamed input feeds an ``Identity`` to its old name (and a renamed output is an ``Identity``
    of it), so no node or subgraph needs rewriting.

    Args:
        graph: the ``onnx.GraphProto`` tf2onnx wrote (changed in place).
        inputs / outputs: the source model's input and output names.

    Returns:
        ``{old name: new name}`` for each renamed tensor (empty when every name already matched).

    Raises:
        ExportError: a source name has no graph input or output of its name (both lists named).
    """
    from onnx import helper

    renamed: dict[str, str] = {}
    for values, wanted, kind in ((graph.input, inputs, "input"), (graph.output, outputs, "output")):
        have = [v.name for v in values]
        pairs = {}
        for name in have:
            base = name.rsplit(":", 1)[0] if name not in wanted else name
            if base in wanted:
                pairs[name] = base
        missing = sorted(set(wanted) - set(pairs.values()))
        if missing:
            raise ExportError(
                f"tf2onnx wrote {kind}s {have}, which do not match the model's {wanted} by name (missing {missing})",
                "name the SavedModel signature's tensors after the model's inputs and outputs",
            )
        for value in values:
            old, new = value.name, pairs.get(value.name, value.name)
            if old == new:
                continue
            value.name = new
            node = (
                helper.make_node("Identity", [new], [old])
                if kind == "input"
                else helper.make_node("Identity", [old], [new])
            )
            if kind == "input":
                graph.node.insert(0, node)
            else:
                graph.node.append(node)
            renamed[old] = new
    return renamed


def _run_tf2onnx(arguments: list[str]) -> str | None:
    """Run ``python -m tf2onnx.convert ARGUMENTS`` in this process, its output kept from the
    terminal; returns None on success, else the error's last line."""
    from tf2onnx import convert

    saved, sink = sys.argv, io.StringIO()
    sys.argv = ["tf2onnx.convert", *arguments]
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), _quiet("tf2onnx"):
            convert.main()
    except SystemExit as exc:  # argparse / tf2onnx exit on bad arguments
        if exc.code:
            lines = [ln for ln in sink.getvalue().splitlines() if ln.strip()]
            return lines[-1] if lines else f"exit status {exc.code}"
    except Exception as exc:  # tf2onnx raises many error types
        return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    finally:
        sys.argv = saved
    return None


@contextlib.contextmanager
def _quiet(name: str):
    """Silence logger ``name`` (tf2onnx logs its progress to stderr) for the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
