"""PyTorch sources: TorchScript ``.pt``, ``torch.export`` ``.pt2``, Hugging Face model folders, and
(only with ``trust_pickle``) a pickled ``nn.Module``.

Loading a pickle runs arbitrary code (``torch.load(weights_only=False)``), so a pickled module or
state dict is refused unless the user passes ``--trust-pickle``. TorchScript archives, torch.export
programs and safetensors load without running code.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from optkit.errors import OptkitError, SourceModelError, missing_dependency
from optkit.formats.hf_config import transformer_shape
from optkit.formats.torch_format import embedded_model_info, read_embedded, sniff
from optkit.io_spec import Dim, ModelInfo, TensorSpec, default_dynamic_axes, token_input_specs
from optkit.runners.base import Runner
from optkit.sources.base import SourceModel
from optkit.sources.torch_program import ProgramInput, check_feeds, program_inputs

HF_TASKS = {
    "ForTokenClassification": "token-classification",
    "ForSequenceClassification": "sequence-classification",
}


def import_torch() -> Any:
    """Import torch or raise the DependencyError that names the install command."""
    try:
        import torch
    except ImportError as exc:
        raise missing_dependency("torch", "torch") from exc
    return torch


def _active_dropout_ops(graph: Any) -> int:
    """Dropout ops of a TorchScript graph whose ``train`` argument is the constant True (what
    ``torch.jit.trace`` of a module in training mode bakes in; a scripted module reads
    ``self.training`` instead, which ``.eval()`` turns off), plus ``aten::bernoulli``."""
    count = 0
    for node in graph.nodes():
        kind = node.kind()
        if kind == "aten::bernoulli" or kind == "aten::bernoulli_":
            count += 1
        elif "dropout" in kind:
            args = list(node.inputs())
            if len(args) >= 3 and args[2].node().kind() == "prim::Constant" and args[2].toIValue() is True:
                count += 1
    return count


class TorchSource(SourceModel):
    """A PyTorch model loaded for reference runs and export.

    Attributes:
        module: a callable ``nn.Module``/``ScriptModule`` taking the inputs positionally, or None
            for a ``torch.export`` program (see ``program``).
        program: the ``torch.export.ExportedProgram`` for ``.pt2`` sources.
        reference: the module the reference runs and timings use when it differs from the one
            exported (a HF folder is exported with eager attention, which ORT's fusions match, but
            users run it with transformers' default attention, SDPA).
    """

    framework = "torch"
    version_modules = {"torch": "torch", "transformers": "transformers"}

    def __init__(
        self,
        path: Path,
        info: ModelInfo,
        kind: str,
        module: Any,
        program: Any = None,
        reference: Any = None,
        reference_name: str | None = None,
        program_inputs: list[ProgramInput] | None = None,
    ) -> None:
        super().__init__(path, info)
        self.kind = kind
        self.module = module
        self.program = program
        self.reference = reference
        self.reference_name = reference_name or f"PyTorch ({kind})"
        self.program_inputs = program_inputs or []

    def traits(self) -> dict[str, object]:
        """See :meth:`~optkit.sources.base.SourceModel.traits`: modules left in training mode,
        active dropout (``nn.Dropout`` in training mode, or dropout ops that a trace in training
        mode baked into a TorchScript graph), half-precision weights, and the reference's attention
        implementation (a Hugging Face folder is exported with eager attention, the reference runs
        transformers' default, e.g. SDPA)."""
        import torch

        found: dict[str, object] = {}
        for module in (self.module, self.reference):
            if not isinstance(module, torch.nn.Module):
                continue
            training = [n or type(module).__name__ for n, m in module.named_modules() if m.training]
            dropout = [
                n
                for n, m in module.named_modules()
                if isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.training
            ]
            if training:
                found["training"] = len(training)
            if dropout:
                found["dropout"] = len(dropout)
            graph = getattr(module, "inlined_graph", None)
            if graph is not None:
                ops = _active_dropout_ops(graph)
                if ops:
                    found["dropout"] = max(ops, int(found.get("dropout", 0)))  # type: ignore[call-overload]
            if any(p.dtype in (torch.float16, torch.bfloat16) for p in module.parameters()):
                found["float16"] = True
        if self.reference is not None and "eager attention" not in self.reference_name:
            found["attention"] = self.reference_name
        return found

    def runner(self, threads: int, device: str = "cpu") -> Runner:
        """The reference runner; for a ``.pt2`` it first checks each batch against the shapes the
        program was exported for (:func:`~optkit.sources.torch_program.check_feeds`)."""
        from optkit.runners.torch_runner import TorchRunner

        runner = TorchRunner(
            self.reference if self.reference is not None else self.module,
            self.info.input_names,
            self.info.output_names,
            threads,
            device,
            name=self.reference_name,
        )
        if self.program_inputs:
            inputs = self.program_inputs
            runner.check = lambda feeds: check_feeds(inputs, feeds)
        return runner

    def device_missing(self, device: str) -> str | None:
        """Why PyTorch cannot run on ``device`` here (no CUDA device), or None."""
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            return "torch sees no CUDA device"
        return None


class _Captured(logging.Handler):
    """Keeps the records of one logger instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def first_error(self) -> str | None:
        """The last line of the first logged exception (its type and message), if any."""
        for record in self.records:
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        return None


@contextmanager
def quiet_logger(name: str) -> Iterator[_Captured]:
    """Keep logger ``name``'s records (``torch.export.load`` logs the whole traceback of a damaged
    ``.pt2`` as a warning) from reaching stderr, unless ``OPTKIT_DEBUG=1``; yields the handler that
    holds them, so the error message can carry the real cause."""
    logger = logging.getLogger(name)
    handler = _Captured()
    if os.environ.get("OPTKIT_DEBUG", "").lower() in ("1", "true", "yes"):
        yield handler
        return
    saved = logger.handlers[:], logger.propagate  # torch._logging puts its own handler on "torch.export"
    logger.handlers, logger.propagate = [handler], False
    try:
        yield handler
    finally:
        logger.handlers, logger.propagate = saved


def load(
    path: Path,
    workdir: Path,
    trust_pickle: bool = False,
    threads: int = 2,
    trust_remote_code: bool = False,
    model_code: dict[str, Any] | None = None,
) -> TorchSource:
    """Load a PyTorch source model.

    Args:
        path: a ``.pt`` TorchScript archive, a ``.pt2`` torch.export program, a HF model folder,
            (with ``trust_pickle``) a ``torch.save`` pickle of an ``nn.Module``, or (with
            ``model_code``) a state dict (``torch.save`` or ``.safetensors``).
        workdir: scratch folder; embedded tokenizer/config files are written to ``workdir/hf``.
        trust_pickle: allow unpickling (runs code from the file).
        trust_remote_code: let a HF folder's own model code (``auto_map``) run (transformers'
            ``trust_remote_code``); optkit runs loaders only inside the confined worker.
        model_code: a :meth:`~optkit.sources.torch_model_code.ModelCode.to_dict`: the user's
            factory that builds the module the state dict at ``path`` loads into.

    Raises:
        SourceModelError: corrupt file (one line; torch's logged traceback is kept off stderr
            unless ``OPTKIT_DEBUG=1``), pickle without trust, state dict instead of a module (without
            ``model_code``), model code that fails or does not fit the state dict.
        DependencyError: torch (or transformers for HF folders) is not installed.
    """
    if model_code is not None:
        return _load_state_dict(path, model_code, import_torch())
    kind = sniff(path)
    torch = import_torch()
    if kind == "hf":
        return _load_hf(path, trust_remote_code)
    if kind == "pickle":
        return _load_pickle(path, trust_pickle, torch)
    embedded = read_embedded(path)
    info = _info_from_embedded(embedded, workdir)
    try:
        with warnings.catch_warnings(), quiet_logger("torch.export") as logged:
            warnings.simplefilter("ignore")
            if kind == "torchscript":
                module = torch.jit.load(str(path), map_location="cpu").eval()
                program = None
                names = [a.name for a in module.forward.schema.arguments[1:]]
            else:
                program = torch.export.load(str(path))
                module = program.module()
                names = [s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    except Exception as exc:  # torch raises RuntimeError/ValueError/... for corrupt archives
        cause = logged.first_error() or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SourceModelError(
            f"cannot load {path} as {kind}: {cause}",
            "the file may be truncated or damaged, or saved by an incompatible torch",
        ) from exc
    declared = list(info.output_names)
    info.input_names = info.input_names or names
    info.output_names = info.output_names or ["output"]
    inputs = program_inputs(program) if program is not None else []
    if info.model_type:  # a transformer (embedded HF config): token inputs are int64 (batch, sequence)
        if not info.dynamic_axes:
            info.dynamic_axes = default_dynamic_axes(info.input_names, info.output_names)
        info.input_specs = token_input_specs(info.input_names)
    if inputs:  # what the program itself declares wins: fixed sizes stay fixed
        info.input_specs = {i.spec.name: i.spec for i in inputs if i.spec.shape}
        info.sequence_range = next((i.ranges[1] for i in inputs if i.spec.shape[1:2] == ("sequence",)), None)
        if not declared:
            info.output_names = _program_output_names(program)
    # plain TorchScript: no dynamic axes here; the exporter derives them from the example's
    # dtypes and ranks (batch, and sequence only for integer token inputs)
    return TorchSource(path, info, kind, module, program, program_inputs=inputs)


def _program_output_names(program: Any) -> list[str]:
    """Names for a program's outputs: the keys of the dict or named tuple it returns (its
    ``out_spec`` pytree context), else ``output``, ``output_1``, ..."""
    count = len(program.graph_signature.user_outputs)
    spec = getattr(getattr(program, "call_spec", None), "out_spec", None)
    context = getattr(spec, "context", None)
    fields = getattr(context, "_fields", None)
    keys = list(fields) if fields else list(context) if isinstance(context, (list, tuple)) else []
    if len(keys) == count and all(isinstance(k, str) for k in keys):
        return keys
    return ["output"] + [f"output_{i}" for i in range(1, count)]


def _info_from_embedded(embedded: dict[str, str], workdir: Path) -> ModelInfo:
    meta = embedded_model_info(embedded)
    hf_files = {k[len("hf/") :]: v for k, v in embedded.items() if k.startswith("hf/")}
    info = ModelInfo(
        task=meta.get("task"),
        input_names=list(meta.get("input_names", [])),
        output_names=list(meta.get("output_names", [])),
        dynamic_axes={t: {int(a): n for a, n in axes.items()} for t, axes in meta.get("dynamic_axes", {}).items()},
    )
    if "config.json" in hf_files:
        hf_dir = workdir / "hf"
        hf_dir.mkdir(parents=True, exist_ok=True)
        for name, text in hf_files.items():
            (hf_dir / Path(name).name).write_text(text)
        _apply_hf_config(info, json.loads(hf_files["config.json"]))
        info.hf_dir = str(hf_dir)
    return info


def _apply_hf_config(info: ModelInfo, config: dict) -> None:
    """Fill model type, heads, hidden size (read per architecture, see
    :func:`~optkit.formats.hf_config.transformer_shape`), labels and task from a HF ``config.json`` dict."""
    info.model_type = config.get("model_type")
    info.num_heads, info.hidden_size = transformer_shape(config)
    id2label = config.get("id2label") or {}
    if id2label:
        info.labels = [id2label[k] for k in sorted(id2label, key=int)]
    if info.task is None:
        for arch in config.get("architectures") or []:
            for suffix, task in HF_TASKS.items():
                if arch.endswith(suffix):
                    info.task = task


def _load_hf(path: Path, trust_remote_code: bool = False) -> TorchSource:
    """Load a HF folder with the head it was saved with (:func:`~optkit.sources.hf_tasks.detect_task`),
    twice: with eager attention for export (ORT's attention fusion does not match SDPA exports) and
    with transformers' default attention (SDPA) as the reference that accuracy and speed are
    measured against, i.e. the model as its users run it. Text models load their tokenizer, image
    models their image processor, audio models their feature extractor (each from the folder's
    files; their inputs' names and shapes come from it).

    Raises:
        SourceModelError: a head optkit does not validate, or a folder transformers cannot load.
    """
    try:
        import transformers
    except ImportError as exc:
        raise missing_dependency("transformers", "torch") from exc
    from optkit.sources.hf_tasks import detect_task
    from optkit.sources.hf_wrapper import make_wrapper

    config = json.loads((path / "config.json").read_text())
    head = detect_task(config, str(path))
    info = ModelInfo(hf_dir=str(path))
    _apply_hf_config(info, config)
    info.task = head.task
    if head.class_name is not None and hasattr(transformers, head.class_name):
        loader, remote = getattr(transformers, head.class_name), {}
    else:
        loader, remote = getattr(transformers, head.auto_class), {"trust_remote_code": trust_remote_code}
    try:
        with warnings.catch_warnings(), quiet_logger("transformers"):
            warnings.simplefilter("ignore")
            model = loader.from_pretrained(str(path), attn_implementation="eager", **remote).eval()
            default = loader.from_pretrained(str(path), **remote).eval()
            _inputs(info, head.modality, path, model.config, transformers, trust_remote_code)
            accepted = _forward_arguments(model)
            if accepted is not None:  # DistilBERT takes no token_type_ids, which a BERT tokenizer makes
                info.input_names = [n for n in info.input_names if n in accepted]
                info.input_specs = {n: s for n, s in info.input_specs.items() if n in accepted}
    except OptkitError:
        raise
    except Exception as exc:  # transformers raises OSError/ValueError/... for broken folders
        raise SourceModelError(
            f"cannot load Hugging Face model from {path}: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}",
            f"a {head.task} folder needs config.json, weights and its {PROCESSOR[head.modality]} files",
        ) from exc
    info.output_names = list(head.outputs)
    info.dynamic_axes = _dynamic_axes(info, head.modality, head.task)
    attention = getattr(default.config, "_attn_implementation", None) or "default"
    return TorchSource(
        path,
        info,
        "hf",
        make_wrapper(model, info.input_names, info.output_names),
        reference=make_wrapper(default, info.input_names, info.output_names),
        reference_name=f"PyTorch eager (hf, {attention} attention)",
    )


#: what preprocesses each modality's inputs, for messages
PROCESSOR = {"text": "tokenizer", "image": "image processor", "audio": "feature extractor"}
#: outputs with one row per token (axis 1 follows the input's sequence axis)
TOKEN_OUTPUT_TASKS = ("token-classification", "fill-mask", "question-answering", "feature-extraction")


def _forward_arguments(model: Any) -> set[str] | None:
    """The argument names of ``model.forward``, or None when it takes ``**kwargs`` only."""
    import inspect

    parameters = inspect.signature(model.forward).parameters.values()
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named or None


def _inputs(info: ModelInfo, modality: str, path: Path, config: Any, transformers: Any, remote: bool) -> None:
    """Set ``info``'s input names and specs from the folder's tokenizer, image processor or feature
    extractor. Image and audio shapes are measured by running the processor on a blank input: an
    axis whose size does not change with the input's size is fixed (e.g. 3 x 224 x 224 pixels)."""
    import numpy as np

    if modality == "text":
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), trust_remote_code=remote)
        info.input_names = list(tokenizer.model_input_names)
        info.input_specs = token_input_specs(info.input_names)
        return
    if modality == "image":
        shape = _image_shape(path, config, transformers, remote)
        info.input_names = ["pixel_values"]
        info.input_specs = {"pixel_values": TensorSpec("pixel_values", "float32", ("batch", *shape))}
        return
    extractor = transformers.AutoFeatureExtractor.from_pretrained(str(path), trust_remote_code=remote)
    name = list(extractor.model_input_names)[0]
    rate = int(getattr(extractor, "sampling_rate", 16000) or 16000)
    short, long = (
        extractor(np.zeros(tenths * rate // 10, np.float32), sampling_rate=rate, return_tensors="np")[name].shape
        for tenths in (1, 2)
    )
    dims: list[Dim] = ["batch"]
    dims += [int(s) if s == t else "samples" for s, t in zip(short[1:], long[1:], strict=True)]
    info.input_names = [name]
    info.input_specs = {name: TensorSpec(name, "float32", tuple(dims))}


def _image_shape(path: Path, config: Any, transformers: Any, remote: bool) -> tuple[int, int, int]:
    """``(channels, height, width)`` the image processor produces (from a blank 97 x 61 image), or
    the model config's ``num_channels`` and ``image_size`` when the folder has no image processor."""
    import numpy as np

    if (path / "preprocessor_config.json").is_file():
        processor = transformers.AutoImageProcessor.from_pretrained(str(path), trust_remote_code=remote)
        from PIL import Image

        blank = Image.fromarray(np.zeros((61, 97, 3), np.uint8))
        shape = processor(images=[blank], return_tensors="np")["pixel_values"].shape
        return int(shape[1]), int(shape[2]), int(shape[3])
    size = getattr(config, "image_size", 224)
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return int(getattr(config, "num_channels", 3)), height, width


def _dynamic_axes(info: ModelInfo, modality: str, task: str) -> dict[str, dict[int, str]]:
    """Batch axis 0 dynamic everywhere; the sequence axis of token inputs and of per-token outputs,
    and the samples axis of audio inputs, too."""
    axes: dict[str, dict[int, str]] = {}
    for name, spec in info.input_specs.items():
        axes[name] = {i: d for i, d in enumerate(spec.shape) if isinstance(d, str)}
    per_token = modality == "text" and task in TOKEN_OUTPUT_TASKS
    for name in info.output_names:
        axes[name] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
    return axes


def _load_pickle(path: Path, trust_pickle: bool, torch: Any) -> TorchSource:
    if not trust_pickle:
        raise SourceModelError(
            f"{path} is a pickle (torch.save); loading it would run arbitrary code from the file",
            "save the model as TorchScript (torch.jit.save), torch.export (.pt2) or a HF folder, "
            "or pass --trust-pickle if you trust this file",
        )
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise SourceModelError(
            f"cannot unpickle {path}: {str(exc).splitlines()[0]}",
            "the file may be truncated or need classes that are not importable",
        ) from exc
    if not isinstance(obj, torch.nn.Module):
        raise SourceModelError(
            f"{path} holds a {type(obj).__name__} (e.g. a state dict: weights without the code)",
            "save the whole model as TorchScript (torch.jit.save) or torch.export (.pt2)",
        )
    from optkit.sources.torch_model_code import forward_names

    info = ModelInfo(input_names=forward_names(obj), output_names=["output"])
    return TorchSource(path, info, "pickle", obj.eval())


def _load_state_dict(path: Path, model_code: dict[str, Any], torch: Any) -> TorchSource:
    """Build the user's module with their factory and load the state dict at ``path`` into it
    (``weights_only=True``, ``strict=True``; see :mod:`optkit.sources.torch_model_code`)."""
    from optkit.sources.torch_model_code import ModelCode, build_module, forward_names, load_weights, read_state_dict

    if path.is_dir():
        raise SourceModelError(
            f"--model-code needs a state dict file, not the folder {path}",
            "pass the .pt/.pth/.bin/.safetensors file the weights were saved to",
        )
    code = ModelCode.from_dict(model_code)
    state = read_state_dict(path, torch)  # before the user's code runs: a bad file fails fast
    model = build_module(code, torch)
    load_weights(model, state, path)
    info = ModelInfo(input_names=forward_names(model), output_names=["output"])
    return TorchSource(path, info, "state_dict", model.eval(), reference_name="PyTorch (state dict + model code)")
