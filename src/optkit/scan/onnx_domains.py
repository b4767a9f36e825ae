"""ONNX: no code runs when a model loads, but a node in a custom op domain needs a shared library
that registers it (ONNX Runtime refuses unknown domains unless ``register_custom_ops_library`` was
called, which optkit never does: https://onnxruntime.ai/docs/reference/operators/add-custom-op.html).
The scan only records the domains."""

from __future__ import annotations

from pathlib import Path

STANDARD_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.ms.internal.nhwc",
    }
)


def onnx_domains(path: Path) -> tuple[list[str], list[str]]:
    """(every op domain the model imports or uses, those outside ONNX and ONNX Runtime's own), both
    sorted; the model is read without its external data. A file that onnx cannot parse gives
    ``([], [])`` (the ONNX loader reports it)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - the loader reports corrupt files with its own error
        return [], []
    domains = {o.domain for o in model.opset_import} | {n.domain for n in model.graph.node}
    domains |= {n.domain for f in model.functions for n in f.node}
    return sorted(domains), sorted(domains - STANDARD_DOMAINS)
