"""ONNX models as a source: ``optkit convert model.onnx`` runs the recipe's passes on an existing
ONNX model and validates the result against the original model.

The reference runner is ONNX Runtime on the original file (so the passes, not the runtime, are what
validation measures). Weights in external data files (``location`` of each initializer, relative to
the model's folder) are part of the source: they must exist, and the source sha256 covers them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from optkit.errors import SourceModelError
from optkit.formats.onnx_format import content_kind, looks_like_onnx, read_head
from optkit.hashing import sha256_file
from optkit.io_spec import Dim, ModelInfo, TensorSpec
from optkit.runners.base import Runner
from optkit.runners.ort_runner import OrtRunner
from optkit.sources.base import SourceModel


class OnnxSource(SourceModel):
    """An ONNX model file (with its external data files, if any).

    Attributes:
        external_files: external data files the model refers to, relative to its folder, sorted.
        opsets: ``{domain: version}`` the model imports (``ai.onnx`` for the default domain).
    """

    framework = "onnx"
    version_modules = {"onnx": "onnx", "onnxruntime": "onnxruntime"}
    kind = "onnx"

    def __init__(self, path: Path, info: ModelInfo, external_files: list[str], opsets: dict[str, int]) -> None:
        super().__init__(path, info)
        self.external_files = external_files
        self.opsets = opsets

    def runner(self, threads: int, device: str = "cpu") -> Runner:
        """The ONNX Runtime reference runner, already activated: a model that ``onnx.checker``
        accepts but ONNX Runtime refuses (an op or domain it lacks, a type mismatch) is a problem
        of the source model, reported here as such rather than as rejected inputs or a failed export.

        Raises:
            SourceModelError: ONNX Runtime cannot create a session for the model.
        """
        runner = OnnxReferenceRunner(self.path, threads, device)
        runner.activate()
        return runner

    def sha256(self) -> str:
        """See :func:`source_sha256`."""
        return _sha256(self.path, self.external_files)


class OnnxReferenceRunner(OrtRunner):
    """ONNX Runtime on the original model: the reference for an ONNX source.

    Raises:
        SourceModelError: ONNX Runtime cannot create a session for the model (unsupported op or
            opset, inconsistent graph), from :meth:`activate`.
    """

    name = "ONNX Runtime (source model)"

    def _activate(self) -> None:
        try:
            super()._activate()
        except Exception as exc:  # onnxruntime raises its own exception types
            raise SourceModelError(
                f"ONNX Runtime cannot load the source model {self.model_path}: {str(exc).splitlines()[0][:300]}",
                "check that the model runs with onnxruntime; re-export it",
            ) from exc


def load(
    path: Path, workdir: Path, trust_pickle: bool = False, threads: int = 2, trust_remote_code: bool = False
) -> OnnxSource:
    """Load and check an ONNX model (``onnx.checker`` on the file, external data included).

    Args:
        path: the ``.onnx`` file; external data files lie beside it, where the model says.
        workdir: unused (the model needs no scratch files).
        trust_pickle: unused (ONNX files hold no code).
        threads: unused here (the runner takes them).

    Returns:
        The source, with input names, dtypes and shapes (named dynamic axes) from the graph.

    Raises:
        SourceModelError: a folder, a file that is not ONNX (naming what it looks like), a truncated
            or corrupt file, missing external data, a model ``onnx.checker`` rejects, or outputs
            that are not tensors (e.g. skl2onnx's ZipMap).
    """
    import onnx

    if path.is_dir():
        raise SourceModelError(f"{path} is a folder, not an ONNX file", "pass the .onnx file itself")
    head = read_head(path)
    if not looks_like_onnx(head):
        raise SourceModelError(
            f"{path} is not an ONNX model (its content is {content_kind(head)})",
            "pass a .onnx file, or name the model's framework with --framework",
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise SourceModelError(
            f"{path} is truncated or corrupt: not a parseable ONNX model "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'no detail'})",
            "export the model again, or copy the file again",
        ) from exc
    external = _external_files(model)
    missing = [name for name in external if not (path.parent / name).is_file()]
    if missing:
        raise SourceModelError(
            f"{path} keeps weights in external data file(s) {missing} that are missing from {path.parent}",
            "copy the .onnx file together with its data file(s)",
        )
    try:
        onnx.checker.check_model(str(path))  # the path form reads external data and models > 2 GB
    except Exception as exc:  # onnx.checker.ValidationError, or protobuf errors on a damaged file
        raise SourceModelError(
            f"{path} is not a valid ONNX model: {str(exc).strip().splitlines()[0][:300]}",
            "export the model again (onnx.checker.check_model must pass)",
        ) from exc
    info = _info(model, path)
    opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
    return OnnxSource(path, info, external, opsets)


def source_sha256(path: Path) -> str:
    """sha256 (hex) of an ONNX source: of the file alone when its weights are inline; with external
    data, sha256 over each file's name and content hash (the model first, then its data files,
    sorted). Reads the graph without weights; a file that does not parse is hashed as bytes.
    """
    import onnx

    try:
        external = _external_files(onnx.load(str(path), load_external_data=False))
    except Exception:  # not parseable: the plain file hash (it cannot match an ONNX source's)
        external = []
    return _sha256(path, [name for name in external if (path.parent / name).is_file()])


def _sha256(path: Path, external_files: list[str]) -> str:
    if not external_files:
        return sha256_file(path)
    digest = hashlib.sha256()
    for name in [path.name, *external_files]:
        digest.update(name.encode() + b"\0" + sha256_file(path.parent / name).encode())
    return digest.hexdigest()


def _external_files(model) -> list[str]:
    """Relative paths of the external data files the main graph's initializers refer to."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    return sorted({ExternalDataInfo(t).location for t in model.graph.initializer if uses_external_data(t)})


def _info(model, path: Path) -> ModelInfo:
    from onnx import TensorProto
    from onnx.helper import tensor_dtype_to_np_dtype

    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    specs: dict[str, TensorSpec] = {}
    dynamic: dict[str, dict[int, str]] = {}
    for value in [*inputs, *model.graph.output]:
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            raise SourceModelError(
                f"{path}: '{value.name}' is a {kind}, not a tensor; optkit compares tensor inputs and outputs only",
                "export the model with plain tensor outputs (for skl2onnx classifiers: options={'zipmap': False})",
            )
        tensor = value.type.tensor_type
        shape: list[Dim] = []
        for axis, dim in enumerate(tensor.shape.dim):
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
            else:
                shape.append(dim.dim_param or f"{value.name}_dim{axis}")
                dynamic.setdefault(value.name, {})[axis] = str(shape[-1])
        if value in inputs:
            specs[value.name] = TensorSpec(
                value.name, np.dtype(tensor_dtype_to_np_dtype(tensor.elem_type)).name, tuple(shape)
            )
    outputs = list(model.graph.output)
    classifier = (
        len(outputs) >= 2
        and outputs[0].type.tensor_type.elem_type == TensorProto.INT64
        and outputs[1].type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.DOUBLE)
    )
    return ModelInfo(
        task="classification" if classifier else None,
        input_names=[v.name for v in inputs],
        output_names=[v.name for v in outputs],
        dynamic_axes=dynamic,
        input_specs=specs,
    )
