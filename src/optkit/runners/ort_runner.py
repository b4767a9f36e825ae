"""Run an ONNX model with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from optkit.runners.base import Feeds, Runner

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float16)": np.float16,
    "tensor(bool)": np.bool_,
}


def available_devices() -> list[str]:
    """Devices ONNX Runtime can run on here: ``["cpu"]`` plus ``"cuda"`` when the CUDA execution
    provider is installed (onnxruntime-gpu) and a GPU answers."""
    import onnxruntime as ort

    devices = ["cpu"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        devices.append("cuda")
    return devices


class OrtRunner(Runner):
    """ONNX Runtime ``InferenceSession`` with ``intra_op_num_threads=threads``,
    ``inter_op_num_threads=1``, sequential execution, full graph optimization (ORT_ENABLE_ALL).

    Args:
        model_path: the ``.onnx`` file (external data beside it).
        threads: intra-op threads, the same number the source runner uses.
        device: ``"cpu"`` (CPUExecutionProvider) or ``"cuda"`` (CUDAExecutionProvider).

    Raises:
        onnxruntime exceptions from session creation propagate (the caller maps them).
    """

    name = "ONNX Runtime"

    def __init__(self, model_path: Path, threads: int, device: str = "cpu") -> None:
        super().__init__(threads, device)
        self.model_path = model_path
        self.session: Any = None  # an onnxruntime.InferenceSession while active
        self.run_options: Any = None  # its onnxruntime.RunOptions

    @property
    def provider(self) -> str:
        """The execution provider name, e.g. ``CPUExecutionProvider``."""
        return PROVIDERS[self.device]

    def _activate(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.model_path), options, providers=[self.provider])
        # a failing run raises, and its callers report it (the shape check names the shape): no
        # second copy of the error in ONNX Runtime's own log on stderr
        self.run_options = ort.RunOptions()
        self.run_options.log_severity_level = 4
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_dtypes = {i.name: ORT_DTYPES.get(i.type) for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _infer(self, feeds: Feeds) -> Feeds:
        """Inputs are cast to the model's declared input types (e.g. float64 data → float32)."""
        arrays = {n: np.ascontiguousarray(feeds[n], dtype=self.input_dtypes[n]) for n in self.input_names}
        outputs = self.session.run(None, arrays, self.run_options)
        return dict(zip(self.output_names, outputs, strict=False))

    def _deactivate(self) -> None:
        self.session = None
