"""Run a PyTorch module (eager, TorchScript or ``torch.export``'s module) on numpy inputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from optkit.runners.base import Feeds, Runner


class TorchRunner(Runner):
    """Reference runner: ``torch.no_grad``, ``torch.set_num_threads(threads)``.

    Args:
        module: callable taking the inputs positionally in ``input_names`` order; returns a tensor,
            a tuple/list of tensors or a mapping.
        input_names / output_names: tensor names; a dict or named-tuple output is named by its keys
            (see :func:`named_outputs`), other outputs beyond ``output_names`` get ``output_<i>``.
        threads: intra-op threads (``torch.set_num_threads``), same as the ONNX Runtime runner's.
        device: ``"cpu"`` or ``"cuda"``.
    """

    def __init__(
        self,
        module: Any,
        input_names: list[str],
        output_names: list[str],
        threads: int,
        device: str = "cpu",
        name: str = "PyTorch",
    ) -> None:
        super().__init__(threads, device)
        self.module = module
        self.input_names = input_names
        self.output_names = output_names
        self.name = name
        self.check: Any = None  # optional ``(feeds) -> None`` that raises for inputs the model cannot take

    def _activate(self) -> None:
        import torch

        torch.set_num_threads(self.threads)
        if self.device == "cuda":
            self.module = self.module.to("cuda")

    def _infer(self, feeds: Feeds) -> Feeds:
        import torch

        if self.check is not None:
            self.check(feeds)
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.input_names]
        with torch.no_grad():  # not inference_mode: TorchScript graphs cached by export then fail
            out = self.module(*args)
            if self.device == "cuda":
                torch.cuda.synchronize()
        return {
            n: t.detach().float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy()
            for n, t in named_outputs(out, self.output_names)
        }


def named_outputs(out: Any, declared: list[str]) -> list[tuple[str, Any]]:
    """The output tensors of one call, each with its name, in order.

    Names: a dict's keys, a named tuple's fields (one level; nested containers are flattened with
    ``<key>_<i>`` names); otherwise ``declared`` in order, then ``output_<i>`` for the rest
    (``declared`` ``["output"]`` and two outputs give ``output``, ``output_1``). The exporter names
    the ONNX outputs with the same function, so that validation pairs them by name.

    Args:
        out: what the module returned: a tensor, a tuple/list, a named tuple or a mapping.
        declared: names known beforehand (embedded metadata), possibly empty.
    """
    flat = list(_flatten(out, None))
    if all(key is None for key, _ in flat):
        positional = list(declared) + [f"output_{i}" for i in range(len(declared), len(flat))]
        return [(positional[i], tensor) for i, (_, tensor) in enumerate(flat)]
    return [(key if key is not None else f"output_{i}", tensor) for i, (key, tensor) in enumerate(flat)]


def _flatten(value: Any, key: str | None) -> Iterator[tuple[str | None, Any]]:
    """``(name or None, tensor)`` for every tensor in ``value``, depth first; names join the keys
    of nested mappings and named tuples (and the positions below them) with ``_``."""
    if isinstance(value, dict):
        items: list[tuple[str | None, Any]] = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        items = [(str(k), v) for k, v in zip(value._fields, value, strict=True)]
    elif isinstance(value, (tuple, list)):
        items = [(str(i) if key is not None else None, v) for i, v in enumerate(value)]
    else:
        yield key, value
        return
    for name, item in items:
        yield from _flatten(item, name if key is None or name is None else f"{key}_{name}")
