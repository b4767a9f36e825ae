"""Load and save ONNX models, with external data for large models (protobuf caps a single
serialized message at 2 GB; see onnx docs "External Data")."""

from __future__ import annotations

from pathlib import Path

import onnx


def weights_bytes(model: onnx.ModelProto) -> int:
    """Total bytes of the model's initializers (raw or typed fields), without serializing it."""
    total = 0
    for tensor in model.graph.initializer:
        if tensor.raw_data:
            total += len(tensor.raw_data)
        else:
            total += 4 * (len(tensor.float_data) + len(tensor.int32_data)) + 8 * (
                len(tensor.int64_data) + len(tensor.double_data)
            )
    return total


def save_onnx(model: onnx.ModelProto, path: Path, external_threshold_mb: float = 1800.0) -> list[Path]:
    """Save ``model`` to ``path``; weights go to ``<name>.data`` beside it when they exceed
    ``external_threshold_mb`` (MB = 10^6 bytes).

    Returns:
        The files written (the ``.onnx`` and, if used, its external data file).
    """
    external = weights_bytes(model) > external_threshold_mb * 1e6
    data_name = path.name + ".data"
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=1024,
        )
        return [path, path.parent / data_name]
    onnx.save_model(model, str(path))
    return [path]


def load_onnx(path: Path) -> onnx.ModelProto:
    """Load a model and its external data (if any)."""
    return onnx.load(str(path), load_external_data=True)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """``{op_type: count}`` over the main graph, sorted by op type."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def name_nodes(model: onnx.ModelProto) -> None:
    """Give unnamed or duplicate nodes stable names (``<op>_<index>``), in place: node names are
    how nodes are kept in float32."""
    taken = {n.name for n in model.graph.node if n.name}
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            name, suffix = f"{node.op_type}_{index}", 0
            while name in taken:
                suffix += 1
                name = f"{node.op_type}_{index}_{suffix}"
            node.name = name
            taken.add(name)
        seen.add(node.name)


def all_graphs(graph: onnx.GraphProto):
    """``graph`` and every subgraph (If/Loop/Scan bodies, any depth), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.g.node:
                yield from all_graphs(attr.g)
            for sub in attr.graphs:
                yield from all_graphs(sub)
