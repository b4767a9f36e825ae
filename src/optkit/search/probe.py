"""Read intermediate tensors of an ONNX model: every requested tensor is made a graph output (ONNX
Runtime accepts untyped graph outputs) and the model runs with graph optimizations off, so the
tensors are the ones the graph names (the method of Polygraphy's ``--onnx-outputs mark all``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx

from optkit.onnx_io import save_onnx
from optkit.runners.base import Feeds
from optkit.runners.ort_runner import ORT_DTYPES


def with_outputs(model: onnx.ModelProto, names: Iterable[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph also outputs ``names`` (existing outputs kept first)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    for name in names:
        if name and name not in have:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    return probe


def run_probe(
    model: onnx.ModelProto,
    path: Path,
    batches: list[Feeds],
    threads: int,
    visit: Callable[[dict[str, np.ndarray]], None],
) -> None:
    """Save ``model`` to ``path`` and call ``visit({tensor name: array})`` once per batch.

    Raises:
        onnxruntime errors for models that cannot run (the caller maps them).
    """
    import onnxruntime as ort

    save_onnx(model, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = {i.name: i.type for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    for batch in batches:
        feeds = {n: np.ascontiguousarray(batch[n], dtype=ORT_DTYPES.get(inputs[n])) for n in inputs}
        visit(dict(zip(names, session.run(None, feeds), strict=False)))
