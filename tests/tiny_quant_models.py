"""Tiny TorchScript models with a planted numerical problem, for the int8 search and fp16 guard.

* ``outlier``: ``relu(x @ w_bad) @ w_good``. Row 0 of ``w_bad`` is 1000 in every column while the
  input feature it multiplies is always 0, so it adds nothing in float32 but sets every int8 scale
  (per tensor and per channel alike) so high that the other weights round to 0: whatever the
  settings, quantizing the ``w_bad`` MatMul destroys the output; quantizing ``w_good`` does not.
* ``overflow``: ``(x @ w_big) @ w_small``. ``x @ w_big`` is about 1.2e5, above float16's largest
  value 65504, so a plain fp16 conversion yields Inf; ``w_small`` (~1e-3) brings the result back to
  ordinary values. (Two MatMuls, because ONNX Runtime would fold a scalar Mul into the first one.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class Outlier(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        bad = torch.randn(16, 32, generator=gen) * 0.3
        bad[0, :] = 1000.0
        self.w_bad = torch.nn.Parameter(bad)
        self.w_good = torch.nn.Parameter(torch.randn(32, 4, generator=gen) * 0.3)

    def forward(self, x):
        return torch.relu(x @ self.w_bad) @ self.w_good


class Overflow(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w_big = torch.nn.Parameter(torch.full((8, 8), 2.0e4))
        self.w_small = torch.nn.Parameter(torch.randn(8, 3, generator=gen) * 1e-3)

    def forward(self, x):
        return (x @ self.w_big) @ self.w_small


def build(folder: Path, kind: str) -> dict[str, Path]:
    """Save model ``kind`` (``"outlier"`` or ``"overflow"``) as TorchScript with 64 samples of
    validation data; returns ``{"pt": path, "npz": path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    if kind == "outlier":
        model, x = Outlier(), rng.normal(size=(64, 16)).astype(np.float32)
        x[:, 0] = 0.0
    else:
        model, x = Overflow(), rng.uniform(0.5, 1.0, size=(64, 8)).astype(np.float32)
    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), torch.from_numpy(x[:2]))
    torch.jit.save(traced, str(folder / "model.pt"))
    np.savez(folder / "data.npz", x=x)
    return {"pt": folder / "model.pt", "npz": folder / "data.npz"}
