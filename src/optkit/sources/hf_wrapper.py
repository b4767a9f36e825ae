"""A thin ``nn.Module`` around a Hugging Face model so that export sees plain tensor arguments.

transformers 5 + ``torch.onnx.export(..., dynamo=False)`` fails on the HF ``forward`` signature
(``got multiple values for argument 'use_cache'``); a wrapper whose ``forward`` takes the input
tensors positionally and returns one tensor avoids it.
"""

from __future__ import annotations

from typing import Any


def make_wrapper(model: Any, input_names: list[str], output: str) -> Any:
    """Wrap ``model`` so that ``wrapper(*tensors)`` returns ``model(**named)[output]``.

    Args:
        model: a ``transformers.PreTrainedModel`` in eval mode.
        input_names: tokenizer input names in call order (e.g. input_ids, attention_mask, ...).
        output: the model output to return (``"logits"`` or ``"last_hidden_state"``).
    """
    import torch

    class HFWrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return getattr(self.model(**dict(zip(input_names, tensors, strict=False)), return_dict=True), output)

    return HFWrapper().eval()
