"""Input/output specs: tensor names, dtypes and shapes with named dynamic axes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

Dim = int | str  # a fixed size, or the name of a dynamic axis ("batch", "sequence")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    Attributes:
        name: the tensor name in the ONNX graph (and the source model's argument name).
        dtype: numpy dtype name, e.g. ``"int64"`` or ``"float32"``.
        shape: one entry per axis: an int for a fixed size, a str for a named dynamic axis.
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...] = ()


@dataclass
class ModelInfo:
    """What optkit knows about a source model beyond its weights.

    Attributes:
        task: ``"token-classification"``, ``"sequence-classification"``, ``"feature-extraction"``
            or ``None`` when unknown.
        input_names / output_names: in call order.
        dynamic_axes: ``{tensor name: {axis index: axis name}}``, as torch.onnx expects.
        hf_dir: a folder with a Hugging Face ``config.json`` and tokenizer files, if known.
        model_type / num_heads / hidden_size: transformer shape from the config (for fusions).
        labels: class names by index (``id2label``), if known.
        input_specs: ``{input name: TensorSpec}`` when the source declares dtypes and shapes
            (ONNX graphs, scikit-learn's feature count, Keras inputs); validation data is checked
            against them. Empty when unknown.
        sequence_range: ``(min, max)`` tokens the model takes on axis 1 of its token inputs
            (``max`` None when unbounded), when the source declares it (a ``.pt2``'s exported
            range); benchmark lengths outside it are clamped into it. None when unknown.
    """

    task: str | None = None
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    hf_dir: str | None = None
    model_type: str | None = None
    num_heads: int = 0
    hidden_size: int = 0
    labels: list[str] | None = None
    input_specs: dict[str, TensorSpec] = field(default_factory=dict)
    sequence_range: tuple[int, int | None] | None = None

    @property
    def is_transformer(self) -> bool:
        """True when the config names a transformer with attention heads."""
        return bool(self.model_type) and self.num_heads > 0


def default_dynamic_axes(input_names: list[str], output_names: list[str]) -> dict[str, dict[int, str]]:
    """Batch (axis 0) and sequence (axis 1) dynamic for token inputs and outputs, as transformer
    exports use; callers with other layouts pass their own mapping."""
    return {name: {0: "batch", 1: "sequence"} for name in [*input_names, *output_names]}


TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def token_input_specs(input_names: list[str]) -> dict[str, TensorSpec]:
    """Specs of the standard transformer token inputs among ``input_names``: int64, shape
    ``(batch, sequence)``; other names are left out (unknown)."""
    return {n: TensorSpec(n, "int64", ("batch", "sequence")) for n in input_names if n in TOKEN_INPUTS}


def info_to_dict(info: ModelInfo) -> dict:
    """``info`` as a JSON-ready dict (axis indices of ``dynamic_axes`` become strings); the inverse
    of :func:`info_from_dict`. Used to pass a source's facts out of its worker process."""
    data = dataclasses.asdict(info)
    data["dynamic_axes"] = {t: {str(a): n for a, n in axes.items()} for t, axes in info.dynamic_axes.items()}
    return data


def info_from_dict(data: dict) -> ModelInfo:
    """Rebuild a :class:`ModelInfo` from :func:`info_to_dict`'s output.

    Raises:
        TypeError / KeyError / ValueError: ``data`` is not such a dict (a protocol error).
    """
    data = dict(data)
    data["dynamic_axes"] = {t: {int(a): str(n) for a, n in axes.items()} for t, axes in data["dynamic_axes"].items()}
    data["input_specs"] = {
        k: TensorSpec(v["name"], v["dtype"], tuple(v["shape"])) for k, v in data["input_specs"].items()
    }
    if data.get("sequence_range") is not None:
        low, high = data["sequence_range"]
        data["sequence_range"] = (int(low), None if high is None else int(high))
    fields = {f.name for f in dataclasses.fields(ModelInfo)}
    return ModelInfo(**{k: v for k, v in data.items() if k in fields})
