"""Which head a Hugging Face folder was saved with, and so its task, inputs and outputs.

The head comes from ``config.architectures`` (the class ``save_pretrained`` was called on), looked
up in transformers' Auto* mappings (``transformers.models.auto.modeling_auto.MODEL_FOR_*_MAPPING_NAMES``,
``{model_type: class name}``). The folder is then loaded with exactly that class, so no head is
dropped (``AutoModel`` on a masked-LM folder would give the bare encoder, and its hidden states,
without a word). A head optkit does not validate yet is refused with the head's name; it is never
loaded as something else. Task names follow Optimum's exporter (``optimum.exporters.tasks``),
except ``sequence-classification`` (Optimum: ``text-classification``), optkit's name since 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optkit.errors import SourceModelError


@dataclass(frozen=True)
class HfTask:
    """The head of a HF folder and how optkit drives it.

    Attributes:
        task: optkit's task name (``"image-classification"``, ``"fill-mask"``, ...).
        class_name: the transformers class to load (``"ViTForImageClassification"``), or None for a
            folder with its own code (loaded through ``auto_class`` and ``auto_map``).
        auto_class: the ``transformers.AutoModelFor*`` class of this task.
        outputs: the model outputs the artifact returns, by name, in order.
        modality: ``"text"`` (token inputs from a tokenizer), ``"image"`` (``pixel_values`` from an
            image processor) or ``"audio"`` (``input_values`` from a feature extractor).
    """

    task: str
    class_name: str | None
    auto_class: str
    outputs: tuple[str, ...]
    modality: str


#: ``(mapping, task, Auto class, outputs, modality)`` of the heads optkit validates, in lookup order
#: (a class in two mappings takes the first); modality None: from the model type (see :func:`modality`)
SUPPORTED: tuple[tuple[str, str, str, tuple[str, ...], str | None], ...] = (
    ("IMAGE_CLASSIFICATION", "image-classification", "AutoModelForImageClassification", ("logits",), "image"),
    ("AUDIO_CLASSIFICATION", "audio-classification", "AutoModelForAudioClassification", ("logits",), "audio"),
    ("TOKEN_CLASSIFICATION", "token-classification", "AutoModelForTokenClassification", ("logits",), "text"),
    ("SEQUENCE_CLASSIFICATION", "sequence-classification", "AutoModelForSequenceClassification", ("logits",), "text"),
    (
        "QUESTION_ANSWERING",
        "question-answering",
        "AutoModelForQuestionAnswering",
        ("start_logits", "end_logits"),
        "text",
    ),
    ("MASKED_LM", "fill-mask", "AutoModelForMaskedLM", ("logits",), "text"),
    ("", "feature-extraction", "AutoModel", ("last_hidden_state",), None),
)
#: class-name endings of the supported heads, for folders with their own code (``auto_map``)
SUFFIXES = {
    "ForImageClassification": "image-classification",
    "ForAudioClassification": "audio-classification",
    "ForTokenClassification": "token-classification",
    "ForSequenceClassification": "sequence-classification",
    "ForQuestionAnswering": "question-answering",
    "ForMaskedLM": "fill-mask",
    "Model": "feature-extraction",
}


BASE_MODEL_HINT = "save the base model (AutoModel) to export its hidden states"
#: a head's own hint where the generic one (the supported heads) says too little
HEAD_HINTS = {
    "multiple-choice": (
        "a multiple-choice head takes inputs of batch x choices x sequence, which optkit's text data "
        "and its validation at other lengths do not build; export it with Optimum "
        "(optimum-cli export onnx --task multiple-choice), or " + BASE_MODEL_HINT
    ),
}


def _unlisted_head(arch: str) -> str | None:
    """The head, from the class name (``BeitForMaskedImageModeling`` -> ``masked-image-modeling``), of
    a transformers class that no Auto* mapping lists; None when ``arch`` is no transformers class."""
    import re

    import transformers

    if "For" not in arch:
        return None
    try:
        known = hasattr(transformers, arch)  # the lazy module imports the class's modeling file
    except Exception:  # a name whose import fails (a missing optional backend) is no class we load
        return None
    if not known:
        return None
    suffix = arch.split("For", 1)[1]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", suffix).lower() or None


def _mapping(name: str) -> dict[str, Any]:
    from transformers.models.auto import modeling_auto

    attr = f"MODEL_FOR_{name}_MAPPING_NAMES" if name else "MODEL_MAPPING_NAMES"
    return dict(getattr(modeling_auto, attr, {}))


def _classes(mapping: dict[str, Any]) -> set[str]:
    """Every class name of a mapping (a value is one name or a tuple of names)."""
    names: set[str] = set()
    for value in mapping.values():
        names.update([value] if isinstance(value, str) else value)
    return names


def modality(model_type: str | None) -> str:
    """``"image"``, ``"audio"`` or ``"text"`` for a base model (``AutoModel``) of ``model_type``:
    image when transformers lists it among image models (``MODEL_FOR_IMAGE_MAPPING_NAMES``), audio
    among CTC or audio-classification models, text otherwise."""
    if model_type in _mapping("IMAGE"):
        return "image"
    if model_type in _mapping("CTC") or model_type in _mapping("AUDIO_CLASSIFICATION"):
        return "audio"
    return "text"


def _head_names() -> dict[str, str]:
    """``{class name: head}`` for every Auto* mapping optkit does not validate (``causal-lm``, ...)."""
    from transformers.models.auto import modeling_auto

    supported = {f"MODEL_FOR_{m}_MAPPING_NAMES" for m, *_ in SUPPORTED if m} | {"MODEL_MAPPING_NAMES"}
    heads: dict[str, str] = {}
    for attr in sorted(dir(modeling_auto)):
        if attr.startswith("MODEL_FOR_") and attr.endswith("_MAPPING_NAMES") and attr not in supported:
            head = attr[len("MODEL_FOR_") : -len("_MAPPING_NAMES")].lower().replace("_", "-")
            for name in _classes(getattr(modeling_auto, attr)):
                heads.setdefault(name, head)
    return heads


def detect_task(config: dict[str, Any], where: str) -> HfTask:
    """The head of the folder whose ``config.json`` is ``config``.

    Args:
        config: the parsed ``config.json``.
        where: the folder, for messages.

    Raises:
        SourceModelError: the architecture has a head optkit does not validate (named, with the
            supported ones), or is unknown to transformers and names no supported head.
    """
    architectures = config.get("architectures") or []
    model_type = str(config.get("model_type") or "") or None
    arch = str(architectures[0]) if isinstance(architectures, list) and architectures else None
    supported = ", ".join(task for _, task, *_ in SUPPORTED)
    if arch is None:  # no head recorded: the base model, as AutoModel loads it
        return HfTask("feature-extraction", None, "AutoModel", ("last_hidden_state",), modality(model_type))
    for name, task, auto, outputs, kind in SUPPORTED:
        if arch in _classes(_mapping(name)):
            return HfTask(task, arch, auto, outputs, kind or modality(model_type))
    head = _head_names().get(arch)
    if head is not None:
        raise SourceModelError(
            f"{where}: {arch} has a {head} head, which optkit does not convert and validate yet",
            HEAD_HINTS.get(head, f"optkit validates these heads: {supported}; {BASE_MODEL_HINT}"),
        )
    head = _unlisted_head(arch)
    if head is not None:
        raise SourceModelError(
            f"{where}: {arch} has a {head} head that transformers' Auto classes do not list, "
            "which optkit does not convert and validate",
            f"optkit validates the heads of transformers' Auto classes: {supported}; {BASE_MODEL_HINT}",
        )
    if config.get("auto_map"):  # the folder's own classes: the head from the class name
        for suffix, task in SUFFIXES.items():
            if arch.endswith(suffix):
                name, _, auto, outputs, kind = next(s for s in SUPPORTED if s[1] == task)
                return HfTask(task, None, auto, outputs, kind or modality(model_type))
    raise SourceModelError(
        f"{where}: architecture {arch} is not a transformers class with a head optkit knows",
        f"optkit validates these heads: {supported} (a folder with its own model code needs --trust-remote-code)",
    )
