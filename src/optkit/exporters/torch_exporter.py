"""PyTorch → ONNX.

* TorchScript, HF folders and trusted pickled modules go through the TorchScript-based exporter
  (``torch.onnx.export(..., dynamo=False)``) with named dynamic axes: its graphs keep the
  MatMul/Softmax attention pattern that ONNX Runtime's transformer fusions match.
* ``torch.export`` programs (``.pt2``) go through the dynamo exporter
  (``torch.onnx.export(program, dynamo=True)``); their dynamic shapes come from the program. The
  exporter writes the opset it supports best (18 and up); when another was asked for, the model is
  converted to it (``onnx.version_converter``), and the manifest records the file's real opset.
* Output names: a dict's keys or a named tuple's fields, else ``output``, ``output_1`` ...
  (:func:`~optkit.runners.torch_runner.named_outputs`, the names the reference runner gives), so
  that validation pairs outputs by name. Dict outputs are flattened into a tuple (the TorchScript
  exporter has no ``prim::DictConstruct``).
* Dynamic axes, when the source declares none: axis 0 (``batch``) of every input and output, and
  axis 1 (``sequence``) of integer inputs of rank 2 and up (token ids, masks) and of the outputs
  whose axis 1 has the example's sequence length; never image channels or feature axes.

Exporter warnings are captured into the report instead of being printed.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from optkit.errors import ExportError
from optkit.onnx_io import load_onnx, save_onnx
from optkit.pass_context import PassOutcome
from optkit.recipe import ExportConfig
from optkit.records.figures import Figure
from optkit.runners.base import Feeds
from optkit.runners.torch_runner import named_outputs
from optkit.sources.torch_source import TorchSource


def export(
    source: TorchSource, example: Feeds, config: ExportConfig, out_path: Path, external_threshold_mb: float = 1800.0
) -> PassOutcome:
    """Export ``source`` to ``out_path``.

    Args:
        source: the loaded PyTorch model.
        example: one real input batch ``{name: array}`` used to trace.
        config: opset and dynamic-axes settings.
        out_path: where to write the ``.onnx`` file.

    Raises:
        ExportError: the exporter raises (its first line is in the message).
    """
    import torch

    info = source.info
    args = tuple(torch.from_numpy(np.ascontiguousarray(example[n])) for n in info.input_names)
    output_names = list(info.output_names)
    module, axes = source.module, info.dynamic_axes
    if source.kind != "torch.export":
        module, output_names, axes = _prepare(source.module, args, info.input_names, info.output_names, axes)
    captured: list[str] = []
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(sink):
            warnings.simplefilter("always")
            if source.kind == "torch.export":
                program = torch.onnx.export(
                    source.program,
                    args=(),
                    dynamo=True,
                    opset_version=config.opset,
                    input_names=info.input_names,
                    output_names=output_names,
                    verbose=False,
                    optimize=True,
                )
                assert program is not None  # dynamo=True returns an ONNXProgram
                model = program.model_proto
                exporter = "torch.onnx (dynamo)"
            else:
                buffer = io.BytesIO()
                torch.onnx.export(
                    module,
                    args,
                    buffer,  # type: ignore[arg-type, unused-ignore]  # the TorchScript exporter takes a file object
                    dynamo=False,
                    opset_version=config.opset,
                    input_names=info.input_names,
                    output_names=output_names,
                    dynamic_axes=axes if config.dynamic_axes else None,
                    do_constant_folding=True,
                )
                import onnx

                model = onnx.load_model_from_string(buffer.getvalue())
                exporter = "torch.onnx (TorchScript)"
        captured = sorted(
            {str(w.message).splitlines()[0][:200] for w in caught if not issubclass(w.category, DeprecationWarning)}
        )
    except Exception as exc:  # torch.onnx raises many error types
        raise ExportError(
            f"torch.onnx.export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            "try another --opset, or export with torch.export (.pt2)",
        ) from exc
    model, note = _to_opset(model, config.opset)
    save_onnx(model, out_path, external_threshold_mb)
    model = load_onnx(out_path)
    details: dict[str, Figure] = {
        "exporter": exporter,
        "opset": _opset(model),
        "source_kind": source.kind,
        "dynamic_axes": config.dynamic_axes,
        "nodes": len(model.graph.node),
        "exporter_warnings": captured,
    }
    if note:
        details["opset_note"] = note
    return PassOutcome(out_path, details, [])


def _opset(model) -> int:
    """The default-domain (``ai.onnx``) opset the model file declares."""
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _to_opset(model, opset: int):
    """``model`` at ``opset`` (``onnx.version_converter``) when the exporter wrote another one;
    returns ``(model, note)``, the note saying why the file keeps its own opset if it cannot."""
    have = _opset(model)
    if have == opset or have == 0:
        return model, None
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, opset)
    except Exception as exc:  # the converter raises its own error types for unsupported adapters
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        return model, f"opset {opset} was asked for; the exporter wrote {have} and conversion failed ({first})"
    return converted, f"the exporter wrote opset {have}; converted to {opset}"


def _prepare(module, args: tuple, input_names: list[str], declared: list[str], axes: dict[str, dict[int, str]]):
    """Run ``module`` once on the example: name its outputs like the reference runner does, flatten
    dict / named-tuple outputs into a traced tuple-returning module, and derive the dynamic axes
    when the source declares none. Returns ``(module, output names, dynamic axes)``."""
    import torch

    with torch.no_grad():
        out = module(*args)
    named = named_outputs(out, declared)
    names = [n for n, _ in named]
    if not isinstance(out, torch.Tensor) and not (
        isinstance(out, tuple) and not hasattr(out, "_fields") and all(isinstance(t, torch.Tensor) for t in out)
    ):
        module = _traced_tuple(module, args)
    if not axes:
        axes = dynamic_axes(input_names, args, names, [t for _, t in named])
    return module, names, axes


def _traced_tuple(module, args: tuple):
    """``module`` traced into one that returns its output tensors as a flat tuple, in the order of
    :func:`named_outputs` (a TorchScript dict output cannot be exported as is)."""
    import torch

    class Flat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *tensors: torch.Tensor) -> tuple:
            return tuple(t for _, t in named_outputs(self.inner(*tensors), []))

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(Flat().eval(), args, check_trace=False)


def dynamic_axes(
    input_names: list[str], inputs: tuple, output_names: list[str], outputs: list
) -> dict[str, dict[int, str]]:
    """The axes that really vary: ``batch`` (axis 0) of every input and output; ``sequence`` (axis
    1) of integer inputs of rank >= 2, and of outputs of rank >= 2 whose axis 1 has that sequence
    length. Float inputs (images, features) keep every axis but 0 fixed.

    Args:
        inputs / outputs: example tensors (their dtypes and shapes are read).
    """
    axes: dict[str, dict[int, str]] = {}
    lengths = set()
    for name, tensor in zip(input_names, inputs, strict=False):
        axes[name] = {0: "batch"} if tensor.dim() else {}
        if tensor.dim() >= 2 and not tensor.is_floating_point() and not tensor.is_complex():
            axes[name][1] = "sequence"
            lengths.add(int(tensor.shape[1]))
    for name, tensor in zip(output_names, outputs, strict=False):
        dims = tensor.dim() if hasattr(tensor, "dim") else 0
        axes[name] = {0: "batch"} if dims else {}
        if dims >= 2 and int(tensor.shape[1]) in lengths:
            axes[name][1] = "sequence"
    return {k: v for k, v in axes.items() if v}
