"""Tiny ONNX items for the batch tests: a 4→3 MatMul and eight rows of inputs (each item converts in
seconds), and a plan writer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

FAST = {
    "benchmark.batch_sizes": [1],
    "benchmark.iterations": 3,
    "benchmark.warmup": 1,
    "benchmark.gates": [],
}


def build_tiny_onnx(folder: Path, seed: int = 0) -> Path:
    """A float32 ``y = x @ W`` model (x: ``(batch, 4)``, y: ``(batch, 3)``) at ``folder/tiny<seed>.onnx``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.RandomState(seed).randn(4, 3).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / f"tiny{seed}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_items(tmp_path_factory) -> Path:
    """A folder with tiny0.onnx, tiny1.onnx and x.npz (8 rows)."""
    import numpy as np

    folder = tmp_path_factory.mktemp("batch-models")
    for seed in (0, 1):
        build_tiny_onnx(folder, seed)
    np.savez(folder / "x.npz", x=np.random.RandomState(1).randn(8, 4).astype(np.float32))
    return folder


def write_plan(folder: Path, models: Path, names: list[str], extra: dict | None = None, **item_keys) -> Path:
    """A plan of one fp32 item per name (``tiny<i>.onnx``) writing under ``folder/out``."""
    items = [{"name": n, "source": str(models / f"tiny{i % 2}.onnx"), **item_keys} for i, n in enumerate(names)]
    plan = {
        "output": str(folder / "out"),
        "defaults": {"recipe": "fp32", "data": str(models / "x.npz"), "overrides": dict(FAST)},
        "items": items,
        **(extra or {}),
    }
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path
