"""Run an ONNX model with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from optkit.records.session import SessionSettings
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


def session_options(settings: SessionSettings) -> Any:
    """An ``onnxruntime.SessionOptions`` holding ``settings`` (log severity: errors only).

    ``allow_spinning`` is the session config entry ``session.intra_op.allow_spinning`` (and
    ``session.inter_op.allow_spinning`` in parallel mode), see ORT's
    ``onnxruntime_session_options_config_keys.h``.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_num_threads
    options.inter_op_num_threads = settings.inter_op_num_threads
    options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if settings.execution_mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.graph_optimization_level]
    spin = "1" if settings.allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    options.enable_cpu_mem_arena = settings.enable_cpu_mem_arena
    options.log_severity_level = 3
    return options


class OrtRunner(Runner):
    """ONNX Runtime ``InferenceSession`` built from :class:`~optkit.records.session.SessionSettings`:
    by default ``intra_op_num_threads=threads``, ``inter_op_num_threads=1``, sequential execution,
    full graph optimization (ORT_ENABLE_ALL), spinning and the CPU arena on; or the artifact's
    serving configuration (``session``, chosen by the ``tune-session`` pass).

    Args:
        model_path: the ``.onnx`` file (external data beside it).
        threads: intra-op threads, the same number the source runner uses (ignored when ``session``
            is given: its ``intra_op_num_threads`` is used).
        device: ``"cpu"`` (CPUExecutionProvider) or ``"cuda"`` (CUDAExecutionProvider).
        session: the session settings; None = the default for ``threads``.

    Raises:
        onnxruntime exceptions from session creation propagate (the caller maps them).
    """

    name = "ONNX Runtime"

    def __init__(
        self, model_path: Path, threads: int, device: str = "cpu", session: SessionSettings | None = None
    ) -> None:
        self.settings = session if session is not None else SessionSettings.default(threads)
        super().__init__(self.settings.intra_op_num_threads, device)
        self.model_path = model_path
        self.session: Any = None  # an onnxruntime.InferenceSession while active
        self.run_options: Any = None  # its onnxruntime.RunOptions

    @property
    def provider(self) -> str:
        """The execution provider name, e.g. ``CPUExecutionProvider``."""
        return PROVIDERS[self.device]

    def _activate(self) -> None:
        import onnxruntime as ort

        options = session_options(self.settings)
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
