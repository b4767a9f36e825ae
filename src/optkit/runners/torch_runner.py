"""Run a PyTorch module (eager, TorchScript or ``torch.export``'s module) on numpy inputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from optkit.runners.base import Feeds, Runner


class TorchRunner(Runner):
    """Reference runner: ``torch.no_grad``, ``torch.set_num_threads(threads)``.

    Args:
        module: callable taking the inputs positionally in ``input_names`` order; returns a tensor,
            a tuple/list of tensors or a mapping.
        input_names / output_names: tensor names; outputs beyond ``output_names`` get ``output_<i>``.
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

    def _activate(self) -> None:
        import torch

        torch.set_num_threads(self.threads)
        if self.device == "cuda":
            self.module = self.module.to("cuda")

    def _infer(self, feeds: Feeds) -> Feeds:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.input_names]
        with torch.no_grad():  # not inference_mode: TorchScript graphs cached by export then fail
            out = self.module(*args)
            if self.device == "cuda":
                torch.cuda.synchronize()
        if isinstance(out, dict):
            tensors = list(out.values())
        elif isinstance(out, (tuple, list)):
            tensors = list(out)
        else:
            tensors = [out]
        names = self.output_names + [f"output_{i}" for i in range(len(self.output_names), len(tensors))]
        return {
            n: t.detach().float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy()
            for n, t in zip(names, tensors, strict=False)
        }
