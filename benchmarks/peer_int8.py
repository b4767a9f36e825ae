"""The peers' default int8 workflows for a BERT-like Hugging Face model, reproduced with ONNX
Runtime's own tools (Olive and Optimum are not installed here; both call these same functions).

Each :class:`PeerRecipe` holds the settings the peer's default workflow uses, read from its source:

* **Olive** (github microsoft/Olive at ee6f40f, 2026-08-20), workflow OnnxConversion →
  OrtTransformersOptimization → OnnxDynamicQuantization:

  - OnnxConversion (``olive/passes/onnx/conversion.py``): ``torch.onnx.export`` with the TorchScript
    exporter (``use_dynamo_exporter`` False), ``target_opset`` 20, dynamic axes; the model loaded
    with ``attn_implementation="eager"`` (the ``olive quantize`` template, ``olive/cli/quantize.py``).
  - OrtTransformersOptimization (``olive/passes/onnx/transformer_optimization.py``):
    ``onnxruntime.transformers.optimizer.optimize_model`` with ``model_type``, ``num_heads`` and
    ``hidden_size`` from the model's config (bert, 12, 384 here), ``opt_level`` None,
    ``optimization_options`` None, ``only_onnxruntime`` False, ``use_gpu`` False.
  - OnnxDynamicQuantization (``olive/passes/onnx/quantization.py``): ``quant_preprocess`` True
    (``quant_pre_process(auto_merge=True)``, the unprocessed model kept if it fails), then
    ``quantize_dynamic`` with ``precision`` int8 → ``weight_type=QInt8``, ``per_channel`` False,
    ``reduce_range`` False, ``op_types_to_quantize`` None (every op of ORT's IntegerOpsRegistry:
    Conv, MatMul, Attention, LSTM, Gather, Transpose, EmbedLayerNormalization), extra options
    ``ActivationSymmetric`` False (``weight_symmetric`` None is not passed: ORT then uses symmetric
    weights for a signed type) and ``quantize_dynamic``'s own ``MatMulConstBOnly`` True;
    activations are QUInt8 (dynamic quantization supports only that).

* **Optimum** ``optimum-cli export onnx`` then ``optimum-cli onnxruntime quantize --avx2``
  (github huggingface/optimum-onnx at 1939f27, 2026-04-15):

  - the exporter (``optimum/exporters/onnx``): TorchScript exporter (``dynamo`` False),
    ``DEFAULT_ONNX_OPSET`` 18 for BERT, constant folding, transformers' default attention (SDPA;
    eager is forced only below transformers 4.42 or for ``output_attentions``); no ORT fusion
    (``--optimize`` is off by default, and ``onnxruntime quantize`` fails on its own O2 output).
  - ``--avx2`` (``optimum/commands/onnxruntime/quantize.py``) =
    ``AutoQuantizationConfig.avx2(is_static=False, per_channel=args.per_channel)``, and
    ``--per_channel`` defaults to False; ``avx2`` (``optimum/onnxruntime/configuration.py``) sets
    ``weights_dtype=QUInt8``, ``activations_dtype=QUInt8``, ``weights_symmetric`` True,
    ``activations_symmetric`` False, ``reduce_range`` False, ``operators_to_quantize`` = every key
    of ORT's IntegerOpsRegistry (as above), IntegerOps mode. ``ORTQuantizer.quantize``
    (``optimum/onnxruntime/quantization.py``) builds ORT's ``ONNXQuantizer`` directly with extra
    options ``WeightSymmetric`` True, ``ActivationSymmetric`` False, ``EnableSubgraph`` False and
    no ``MatMulConstBOnly`` (so False): reproduced here by ``quantize_dynamic`` with those options.

* **Per-tensor full int8** (the Done-when's reference): ``quantize_dynamic``'s own defaults
  (``QInt8``, ``per_channel`` False, ``reduce_range`` False, every IntegerOps op type,
  ``MatMulConstBOnly`` True) on optkit's fp32 artifact (optkit's export, simplify and fuse): the
  graph optkit quantizes, quantized the way a peer does by default.

Every fused model gets ``DefaultTensorType`` FLOAT in the quantizer's extra options when the
quantizer cannot type a tensor behind a com.microsoft op (the error the peers' tools then raise,
see shared/CONTEXT.md); :attr:`PeerModel.notes` says when that was needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ONNX ops that hold attention after ORT's fusions (fused or quantized)
ATTENTION_OPS = ("Attention", "QAttention", "MultiHeadAttention")


@dataclass(frozen=True)
class PeerRecipe:
    """How one peer's default workflow builds an int8 model.

    Attributes:
        key: short name used in the table and the JSON (``olive``, ``optimum-avx2``, ``per-tensor``).
        label: the table's row label.
        attention: ``"eager"`` or ``"sdpa"``: the HF attention the model is exported with (None: the
            model is not exported here but taken from optkit's fp32 artifact).
        opset: the ONNX opset of the export (None with ``attention`` None).
        fuse: run ORT's BERT optimizer (``optimize_model``) before quantizing.
        preprocess: run ``quant_pre_process`` before quantizing (its failure keeps the model as is).
        weight_type: ``"QInt8"`` or ``"QUInt8"``.
        per_channel / reduce_range: the quantizer's flags.
        extra_options: the quantizer's extra options (``MatMulConstBOnly`` etc.).
        source: where the settings were read (for the docs).
    """

    key: str
    label: str
    attention: str | None
    opset: int | None
    fuse: bool
    preprocess: bool
    weight_type: str
    per_channel: bool
    reduce_range: bool
    extra_options: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def settings(self) -> str:
        """One line of the quantizer settings, e.g. ``QInt8, per-tensor, MatMulConstBOnly``."""
        parts = [self.weight_type, "per-channel" if self.per_channel else "per-tensor"]
        if self.reduce_range:
            parts.append("reduce_range")
        if self.extra_options.get("MatMulConstBOnly", False):
            parts.append("MatMulConstBOnly")
        return ", ".join(parts)


OLIVE = PeerRecipe(
    key="olive",
    label="Olive default int8",
    attention="eager",
    opset=20,
    fuse=True,
    preprocess=True,
    weight_type="QInt8",
    per_channel=False,
    reduce_range=False,
    extra_options={"ActivationSymmetric": False, "MatMulConstBOnly": True},
    source="microsoft/Olive ee6f40f olive/passes/onnx/quantization.py, transformer_optimization.py, conversion.py",
)
OPTIMUM_AVX2 = PeerRecipe(
    key="optimum-avx2",
    label="Optimum default int8 (avx2)",
    attention="sdpa",
    opset=18,
    fuse=False,
    preprocess=False,
    weight_type="QUInt8",
    per_channel=False,
    reduce_range=False,
    extra_options={
        "WeightSymmetric": True,
        "ActivationSymmetric": False,
        "EnableSubgraph": False,
        "MatMulConstBOnly": False,
    },
    source="huggingface/optimum-onnx 1939f27 optimum/onnxruntime/configuration.py (avx2), quantization.py, "
    "optimum/commands/onnxruntime/quantize.py",
)
PER_TENSOR = PeerRecipe(
    key="per-tensor",
    label="per-tensor full int8 (quantize_dynamic defaults)",
    attention=None,
    opset=None,
    fuse=False,
    preprocess=False,
    weight_type="QInt8",
    per_channel=False,
    reduce_range=False,
    extra_options={"MatMulConstBOnly": True},
    source="onnxruntime.quantization.quantize_dynamic defaults",
)
PEERS = (OLIVE, OPTIMUM_AVX2)


@dataclass
class PeerModel:
    """One peer's int8 model, built.

    Attributes:
        recipe: how it was built.
        path: the quantized ``.onnx``.
        fusions: ORT's fused-operator statistics (``optimize_model``), empty when not fused.
        notes: what deviated from the plain recipe (a failed pre-processing, ``DefaultTensorType``).
        seconds: wall time to build it (export, fuse, quantize), s.
    """

    recipe: PeerRecipe
    path: Path
    fusions: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def export(
    module: Any, names: list[str], outputs: list[str], axes: dict, example: dict, path: Path, opset: int
) -> None:
    """``torch.onnx.export`` (TorchScript exporter, constant folding, dynamic axes) of ``module``.

    Args:
        module: the wrapped HF model (``optkit.sources.hf_wrapper``), inputs positional.
        names / outputs: input and output names; axes: ``{name: {axis: name}}``.
        example: ``{input name: int64 array (batch, sequence)}``.
        path: the ``.onnx`` to write; opset: the ONNX opset.
    """
    import torch

    args = tuple(torch.from_numpy(example[n]) for n in names)
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def fuse(path: Path, out: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """ORT's BERT optimizer as Olive's OrtTransformersOptimization calls it; returns the fused
    operator statistics (e.g. ``{"Attention": 6, "EmbedLayerNormalization": 1, ...}``)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimizer = optimize_model(
        str(path), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=None, use_gpu=False
    )
    optimizer.save_model_to_file(str(out), use_external_data_format=False)
    return {k: int(v) for k, v in optimizer.get_fused_operator_statistics().items() if v}


def preprocess(path: Path, out: Path) -> str | None:
    """``quant_pre_process(auto_merge=True)`` as Olive runs it; returns None, or why it failed (the
    caller then quantizes ``path`` as it is, as Olive does)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from optkit.quiet_logs import quiet_logs

    try:
        with quiet_logs():
            quant_pre_process(str(path), str(out), auto_merge=True)
    except Exception as exc:  # Olive catches every failure and keeps the model
        return f"quant_pre_process failed ({type(exc).__name__}), model quantized as exported"
    return None


def quantize(recipe: PeerRecipe, path: Path, out: Path) -> list[str]:
    """``quantize_dynamic`` with the recipe's settings; returns notes (``DefaultTensorType`` was
    needed when the quantizer could not type a tensor behind a com.microsoft op).

    Raises:
        Exception: the quantizer's own error when it fails even with ``DefaultTensorType``.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from optkit.quiet_logs import quiet_logs

    def run(extra: dict[str, Any]) -> None:
        with quiet_logs():  # the quantizer's advice goes through the root logger
            quantize_dynamic(
                str(path),
                str(out),
                per_channel=recipe.per_channel,
                reduce_range=recipe.reduce_range,
                weight_type=QuantType[recipe.weight_type],
                extra_options=dict(extra),
            )

    try:
        run(recipe.extra_options)
        return []
    except Exception as exc:  # "Unable to find data type for weight_name=..." on fused graphs
        if "data type" not in str(exc):
            raise
    run({**recipe.extra_options, "DefaultTensorType": onnx.TensorProto.FLOAT})
    return ["DefaultTensorType FLOAT (the quantizer could not type a tensor behind a com.microsoft op)"]


def build(
    recipe: PeerRecipe, source: Any, example: dict, workdir: Path, fp32_artifact: Path | None = None
) -> PeerModel:
    """Build ``recipe``'s int8 model of ``source`` in ``workdir``.

    Args:
        recipe: the peer's settings.
        source: an ``optkit.sources.torch_source.TorchSource`` of a HF folder (``module``: eager
            attention, ``reference``: transformers' default attention; ``info``: names, axes, heads).
        example: inputs for the export trace.
        workdir: a folder of its own for this recipe's files.
        fp32_artifact: optkit's fp32 ``model.onnx``, for a recipe that exports nothing.

    Raises:
        ValueError: a recipe without export and no ``fp32_artifact``.
    """
    if recipe.attention is None and fp32_artifact is None:
        raise ValueError(f"{recipe.key} quantizes optkit's fp32 artifact: pass fp32_artifact")
    start = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    fusions: dict[str, int] = {}
    info = source.info
    if fp32_artifact is not None and recipe.attention is None:
        current = fp32_artifact
    else:
        module = source.module if recipe.attention == "eager" else source.reference
        current = workdir / "export.onnx"
        assert recipe.opset is not None
        export(module, info.input_names, info.output_names, info.dynamic_axes, example, current, recipe.opset)
    if recipe.fuse:
        fused = workdir / "fused.onnx"
        fusions = fuse(current, fused, info.num_heads, info.hidden_size)
        current = fused
    if recipe.preprocess:
        processed = workdir / "preprocessed.onnx"
        failed = preprocess(current, processed)
        if failed:
            notes.append(failed)
        else:
            current = processed
    out = workdir / "model.onnx"
    notes += quantize(recipe, current, out)
    return PeerModel(recipe, out, fusions, notes, time.perf_counter() - start)
