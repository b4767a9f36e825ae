"""What the benchmark scripts share: one ``optkit.convert`` per recipe variant, and a Markdown table."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optkit


def convert_each(
    model: Path, data: Path, variants: list[tuple[str, Any]], row: Callable[[str, Any, Path, float], list[str]]
) -> list[list[str]]:
    """Convert ``model`` once per ``(label, Recipe)`` into a temporary folder and return
    ``row(label, result, artifact folder, wall seconds)`` for each, printing progress."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, recipe in variants:
            start = time.perf_counter()
            out = Path(tmp) / recipe.name
            result = optkit.convert(model, recipe, out, data=str(data))
            wall = time.perf_counter() - start
            rows.append(row(label, result, out, wall))
            print(f"done: {label} ({wall:.0f} s)", flush=True)
    return rows


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Print a Markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def speed_cells(result) -> list[str]:
    """PyTorch p50, artifact p50 and speed-up at 1×128 and at 8×128 (ms)."""
    shapes = {(s.batch_size, s.sequence_length): s for s in result.speed.shapes}
    cells = []
    for shape in ((1, 128), (8, 128)):
        s = shapes[shape]
        cells += [f"{s.source.p50_ms:.1f}", f"{s.artifact.p50_ms:.1f}", f"{s.speedup:.2f}×"]
    return cells


def int8_settings(result) -> str:
    """The int8 settings a run used: the search's choice (with nodes kept in fp32), or the fixed
    settings of its quantize-dynamic pass, or ``—``."""
    searches = result.manifest.search if result.manifest is not None else []
    if searches:
        kept = len(searches[0].fp32_nodes)
        return searches[0].settings + (f", {kept} node(s) fp32" if kept else "")
    step = next((s for s in result.steps if s.name == "quantize-dynamic"), None)
    if step is None:
        return "—"
    return f"{step.details['weight_type']}, {'per-channel' if step.details['per_channel'] else 'per-tensor'}"
