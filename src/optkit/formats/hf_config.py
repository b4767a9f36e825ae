"""Attention heads and hidden size from a Hugging Face ``config.json``, read per architecture.

Architectures name these two numbers differently (DistilBERT ``n_heads`` / ``dim``, GPT-2 ``n_head``
/ ``n_embd``, T5 ``num_heads`` / ``d_model``, BART ``encoder_attention_heads`` / ``d_model``; BERT,
ViT and most others ``num_attention_heads`` / ``hidden_size``). The keys follow Optimum's
``NormalizedConfig`` classes (optimum/utils/normalized_config.py) and transformers' own
``attribute_map`` of each config class. A value that is not one positive int (Swin lists one head
count per stage) reads as 0, which ONNX Runtime's transformer optimizer takes as "detect from the
graph".
"""

from __future__ import annotations

from typing import Any

#: ``model_type: (heads key, hidden size key)`` where they differ from ``num_attention_heads`` /
#: ``hidden_size``
SHAPE_KEYS: dict[str, tuple[str, str]] = {
    "distilbert": ("n_heads", "dim"),
    "gpt2": ("n_head", "n_embd"),
    "gpt_bigcode": ("n_head", "n_embd"),
    "codegen": ("n_head", "n_embd"),
    "gptj": ("n_head", "n_embd"),
    "bloom": ("n_head", "hidden_size"),
    "t5": ("num_heads", "d_model"),
    "mt5": ("num_heads", "d_model"),
    "longt5": ("num_heads", "d_model"),
    "bart": ("encoder_attention_heads", "d_model"),
    "mbart": ("encoder_attention_heads", "d_model"),
    "marian": ("encoder_attention_heads", "d_model"),
    "pegasus": ("encoder_attention_heads", "d_model"),
    "blenderbot": ("encoder_attention_heads", "d_model"),
    "m2m_100": ("encoder_attention_heads", "d_model"),
    "whisper": ("encoder_attention_heads", "d_model"),
    "funnel": ("n_head", "d_model"),
    # one head count per stage and a hidden size that doubles per stage: 0, 0 (detect from the graph)
    "swin": ("", ""),
}
DEFAULT_KEYS = ("num_attention_heads", "hidden_size")
#: nested configs whose text (or vision) tower holds the shape when the top level does not
NESTED = ("text_config", "vision_config", "encoder")


def _positive_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _own_shape(config: dict[str, Any]) -> tuple[int, int]:
    heads_key, hidden_key = SHAPE_KEYS.get(str(config.get("model_type") or ""), DEFAULT_KEYS)
    return _positive_int(config.get(heads_key)), _positive_int(config.get(hidden_key))


def transformer_shape(config: dict[str, Any]) -> tuple[int, int]:
    """``(attention heads, hidden size)`` of the model ``config`` (a parsed ``config.json``).

    Reads the keys of the config's ``model_type`` (:data:`SHAPE_KEYS`, else
    ``num_attention_heads`` / ``hidden_size``), then, when both are missing, the same keys in a
    nested ``text_config`` / ``vision_config`` / ``encoder`` (one level deep). Missing or non-int
    values are 0.
    """
    heads, hidden = _own_shape(config)
    for key in NESTED:
        nested = config.get(key)
        if heads or hidden:
            break
        if isinstance(nested, dict):
            heads, hidden = _own_shape(nested)
    return heads, hidden
