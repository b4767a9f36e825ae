"""PaddlePaddle sources: programs saved with ``paddle.jit.save`` — the legacy ``.pdmodel`` or the
newer PIR ``.json`` program — with their ``.pdiparams`` beside them.

The reference run uses Paddle Inference (``paddle.inference.create_predictor``) on CPU with
``set_cpu_math_library_num_threads(threads)``. Paddle is imported only in runs that need it
(importing TensorFlow and then Paddle in one process crashes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from optkit.errors import SourceModelError, missing_dependency
from optkit.formats.paddle_format import program_files
from optkit.hashing import hash_path
from optkit.io_spec import ModelInfo
from optkit.runners.base import Feeds, Runner
from optkit.sources.base import SourceModel


class PaddleSource(SourceModel):
    """A ``paddle.jit.save`` program with its parameters."""

    framework = "paddle"
    version_modules = {"paddlepaddle": "paddle", "paddle2onnx": "paddle2onnx"}

    def __init__(self, path: Path, info: ModelInfo, kind: str, program: Path, params: Path, predictor: Any) -> None:
        super().__init__(path, info)
        self.kind, self.program, self.params, self.predictor = kind, program, params, predictor

    def runner(self, threads: int, device: str = "cpu") -> Runner:
        return PaddleRunner(self, threads)

    def sha256(self) -> str:
        """See :func:`source_sha256`."""
        return source_sha256(self.path)


def source_sha256(path: Path) -> str:
    """sha256 (hex) over the program file's and the parameters file's sha256 (in that order), without
    loading them. Raises SourceModelError as :func:`program_files` does."""
    import hashlib

    program, params = program_files(path)
    return hashlib.sha256((hash_path(program) + hash_path(params)).encode()).hexdigest()


class PaddleRunner(Runner):
    """Paddle Inference predictor on CPU."""

    name = "Paddle Inference"

    def __init__(self, source: PaddleSource, threads: int) -> None:
        super().__init__(threads)
        self.source = source

    def _activate(self) -> None:
        return None  # the predictor was created with the thread count at load

    def _infer(self, feeds: Feeds) -> Feeds:
        predictor = self.source.predictor
        for name in predictor.get_input_names():
            handle = predictor.get_input_handle(name)
            array = np.ascontiguousarray(
                feeds[name], dtype=np.float32 if np.issubdtype(feeds[name].dtype, np.floating) else feeds[name].dtype
            )
            handle.reshape(list(array.shape))
            handle.copy_from_cpu(array)
        predictor.run()
        return {n: predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()}


def load(
    path: Path, workdir: Path, trust_pickle: bool = False, threads: int = 2, trust_remote_code: bool = False
) -> PaddleSource:
    """Load a Paddle inference program and create its CPU predictor.

    Raises:
        SourceModelError: missing params, corrupt program.
        DependencyError: paddlepaddle is not installed.
    """
    try:
        from paddle import inference
    except ImportError as exc:
        raise missing_dependency("paddlepaddle", "paddle") from exc
    program, params = program_files(path)
    config = inference.Config(str(program), str(params))
    config.disable_gpu()
    config.disable_glog_info()
    config.set_cpu_math_library_num_threads(threads)
    try:
        predictor = inference.create_predictor(config)
    except Exception as exc:  # Paddle raises its own error types for corrupt programs
        raise SourceModelError(
            f"cannot load Paddle program {program}: {str(exc).strip().splitlines()[-1][:200]}",
            "the files may be truncated or corrupt; save them again with paddle.jit.save",
        ) from exc
    inputs, outputs = list(predictor.get_input_names()), list(predictor.get_output_names())
    info = ModelInfo(input_names=inputs, output_names=outputs, dynamic_axes={n: {0: "batch"} for n in inputs + outputs})
    kind = "paddle-pir" if program.suffix == ".json" else "paddle-pdmodel"
    return PaddleSource(path, info, kind, program, params, predictor)
