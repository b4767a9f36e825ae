"""The paths a confined worker may read for one source model: the model and its companion files only.

A model file never grants its folder: ``/root/model.pkl`` must not open ``/root`` to the model.
Computed in optkit's own process, before the worker starts: it imports ``onnx`` (numpy, threads),
which the worker may not do before it confines itself.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from optkit.sources.onnx_format import looks_like_onnx, read_head


def model_read_paths(path: Path) -> list[Path]:
    """The files/folders the worker needs to read ``path``, as absolute resolved paths.

    * a folder: ``[folder]`` (everything beneath it); for a Hugging Face hub cache snapshot
      (``models--org--name/snapshots/<revision>``, whose files are symlinks into the repository's
      ``blobs/``), that ``blobs`` folder too.
    * a file: the file, plus the regular files beside it whose name starts with the file's stem and a
      dot (Paddle ``model.pdmodel`` + ``model.pdiparams`` (+ ``.pdiparams.info``); for a ``.keras``,
      ``.pt`` or ``.skops`` file, usually nothing more), plus, for an ONNX file (suffix ``.onnx`` or
      ONNX content), the external data files its tensors name (``external_data`` ``location``,
      relative to the model's folder).

    Nothing outside the model's folder is granted: a companion or external data file that is (or
    resolves through a symlink to) something outside it, an absolute ``location`` or one with a
    ``..`` component is left out (the worker then fails to read it, which the run reports).

    Args:
        path: the model file or folder as the user gave it.

    Returns:
        the paths without duplicates, the model first; ``[path]`` resolved for a path that does not
        exist. Never raises.
    """
    given = Path(os.path.abspath(path))
    model = given.resolve()
    if not given.is_file():
        blobs = model.parent.parent / "blobs"
        if model.is_dir() and model.parent.name == "snapshots" and model.parent.parent.name.startswith("models--"):
            return [model, blobs] if blobs.is_dir() else [model]
        return [model]
    folder = given.parent  # where the frameworks look for companions (the path as given)
    inside = folder.resolve()
    prefix = given.stem + "."
    paths = [model]
    try:
        siblings = sorted(folder.iterdir())
    except OSError:
        siblings = []
    for sibling in siblings:
        if not sibling.name.startswith(prefix) or sibling.name == given.name:
            continue
        target = sibling.resolve()
        if target.parent == inside and target.name.startswith(prefix) and target.is_file():
            paths.append(target)
    if given.suffix.lower() == ".onnx" or looks_like_onnx(read_head(given)):
        paths += [p for p in _onnx_external_data(given, inside)]
    return list(dict.fromkeys(paths))


def _onnx_external_data(model: Path, inside: Path) -> list[Path]:
    """The external data files of ``model`` that lie inside ``inside`` (resolved); never raises."""
    try:
        import onnx
        from onnx import external_data_helper

        proto = onnx.load(str(model), load_external_data=False)
        tensors = getattr(external_data_helper, "_get_all_tensors", None)
        tensors = list(tensors(proto)) if tensors else list(proto.graph.initializer)
    except Exception:  # not ONNX after all, too large for protobuf, no onnx installed
        return []
    found = []
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
        if not _is_plain_relative(location):
            continue
        target = (model.parent / location).resolve()
        if target.is_relative_to(inside) and target.is_file():
            found.append(target)
    return found


def _is_plain_relative(location: str) -> bool:
    """Whether ``location`` is a non-empty relative path without ``..`` (on POSIX and Windows rules)."""
    if not location or "\0" in location or os.path.isabs(location):
        return False
    for pure in (PurePosixPath(location), PureWindowsPath(location)):
        if pure.is_absolute() or pure.drive or pure.root or ".." in pure.parts:
            return False
    return True
