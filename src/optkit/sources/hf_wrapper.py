"""A thin ``nn.Module`` around a Hugging Face model so that export sees plain tensor arguments.

transformers 5 + ``torch.onnx.export(..., dynamo=False)`` fails on the HF ``forward`` signature
(``got multiple values for argument 'use_cache'``); a wrapper whose ``forward`` takes the input
tensors positionally and returns one tensor avoids it.
"""

from __future__ import annotations

from typing import Any


def make_wrapper(model: Any, input_names: list[str], outputs: list[str]) -> Any:
    """Wrap ``model`` so that ``wrapper(*tensors)`` returns ``model(**named)[output]`` for each of
    ``outputs``: the one tensor, or a tuple of them in order.

    Args:
        model: a ``transformers.PreTrainedModel`` in eval mode.
        input_names: input names in call order (e.g. input_ids, attention_mask, ...; pixel_values).
        outputs: the model outputs to return (e.g. ``["logits"]``, ``["start_logits", "end_logits"]``).
    """
    import torch

    class HFWrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
            result = self.model(**dict(zip(input_names, tensors, strict=False)), return_dict=True)
            values = tuple(getattr(result, name) for name in outputs)
            return values[0] if len(values) == 1 else values

    return HFWrapper().eval()
