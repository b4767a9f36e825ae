"""TensorFlow / Keras sources: Keras 3 ``.keras`` files and SavedModel folders.

``.keras`` files load with ``safe_mode=True`` (Keras refuses to deserialize lambdas, which would run
code). The reference run uses TensorFlow itself: the Keras model's call (traced once with
``tf.function``) or the SavedModel's ``serving_default`` signature. TensorFlow's intra-op pool is
set to ``threads`` before the model loads (it cannot change after TensorFlow initialises).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from optkit.errors import SourceModelError, missing_dependency
from optkit.io_spec import ModelInfo
from optkit.runners.base import Feeds, Runner
from optkit.sources.base import SourceModel

SERVING = "serving_default"


def import_tf(threads: int | None = None) -> Any:
    """Import TensorFlow quietly; set its thread pools once (intra = ``threads``, inter = 1)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise missing_dependency("tensorflow", "tf") from exc
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised in this process: keep its pools
    return tf


class TFSource(SourceModel):
    """A Keras model (``kind="keras"``) or a SavedModel (``kind="savedmodel"``).

    Attributes:
        model: the Keras model, or the loaded SavedModel object.
        call: ``(dict of tf tensors) -> dict of tf tensors`` running the model.
    """

    framework = "tensorflow"
    version_modules = {"tensorflow": "tensorflow", "keras": "keras"}

    def __init__(self, path: Path, info: ModelInfo, kind: str, model: Any, call: Any) -> None:
        super().__init__(path, info)
        self.kind, self.model, self.call = kind, model, call

    def runner(self, threads: int, device: str = "cpu") -> Runner:
        return TFRunner(self, threads)


class TFRunner(Runner):
    """Runs the model with TensorFlow on CPU; outputs in ``info.output_names`` order."""

    name = "TensorFlow"

    def __init__(self, source: TFSource, threads: int) -> None:
        super().__init__(threads)
        self.source = source

    def _activate(self) -> None:
        return None  # threads were set before load (see import_tf)

    def _infer(self, feeds: Feeds) -> Feeds:
        tf = import_tf()
        info = self.source.info
        tensors = {
            n: tf.constant(
                np.ascontiguousarray(feeds[n], dtype=np.float32)
                if np.issubdtype(feeds[n].dtype, np.floating)
                else feeds[n]
            )
            for n in info.input_names
        }
        out = self.source.call(tensors)
        return {n: out[n].numpy() for n in info.output_names}


def load(
    path: Path, workdir: Path, trust_pickle: bool = False, threads: int = 2, trust_remote_code: bool = False
) -> TFSource:
    """Load a ``.keras`` file or a SavedModel folder.

    Raises:
        SourceModelError: not a Keras/SavedModel, corrupt, or unsafe (lambda layers) content.
        DependencyError: tensorflow is not installed.
    """
    tf = import_tf(threads)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise SourceModelError(
                f"{path} is a folder without saved_model.pb", "pass a SavedModel folder or a .keras file"
            )
        try:
            loaded = tf.saved_model.load(str(path))
            signature = loaded.signatures[SERVING]
        except KeyError as exc:
            raise SourceModelError(
                f"{path} has no '{SERVING}' signature", "export it with a serving signature"
            ) from exc
        except Exception as exc:
            raise SourceModelError(
                f"cannot load SavedModel {path}: {str(exc).splitlines()[0][:200]}",
                "the folder may be truncated or corrupt; export it again",
            ) from exc
        inputs = sorted(signature.structured_input_signature[1])
        outputs = sorted(signature.structured_outputs)
        info = ModelInfo(
            input_names=inputs, output_names=outputs, dynamic_axes={n: {0: "batch"} for n in inputs + outputs}
        )
        return TFSource(path, info, "savedmodel", loaded, lambda feeds: signature(**feeds))
    if path.suffix.lower() != ".keras":
        raise SourceModelError(
            f"unsupported TensorFlow file '{path.suffix}' ({path})", "pass a .keras file or a SavedModel folder"
        )
    import keras

    try:
        model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:
        raise SourceModelError(
            f"cannot load Keras model {path}: {str(exc).splitlines()[0][:200]}",
            "the file may be corrupt, or hold lambda layers (unsafe to deserialize)",
        ) from exc
    inputs = [t.name for t in model.inputs]
    outputs = [f"output_{i}" for i in range(len(model.outputs))]
    info = ModelInfo(input_names=inputs, output_names=outputs, dynamic_axes={n: {0: "batch"} for n in inputs + outputs})
    if len(outputs) == 1 and model.outputs[0].shape[-1] and model.outputs[0].shape[-1] > 1:
        info.task = "sequence-classification"
    # fed by name (a dict keyed by the Keras inputs' names), never by position
    predict = tf.function(
        lambda feeds: model(feeds if len(inputs) > 1 else feeds[inputs[0]], training=False), reduce_retracing=True
    )

    def call(feeds: dict) -> dict:
        out = predict({n: feeds[n] for n in inputs})
        out = out if isinstance(out, (list, tuple)) else [out]
        return dict(zip(outputs, out, strict=False))

    return TFSource(path, info, "keras", model, call)
