"""optkit: convert a trained model to an approved ONNX artifact (validated against its source).

Python API::

    import optkit
    result = optkit.convert("model.pt", recipe="ner-int8", data="test.conll")
    result.approved, result.output_dir, result.gates
    session = optkit.load_session(result.output_dir)  # ONNX Runtime, with the serving settings
"""

from __future__ import annotations

from optkit.version import __version__


def convert(*args, **kwargs):
    """See :func:`optkit.pipeline.convert` (imported lazily so ``import optkit`` stays fast)."""
    from optkit.pipeline import convert as _convert

    return _convert(*args, **kwargs)


def load_session(*args, **kwargs):
    """See :func:`optkit.artifact.load.load_session`: an ONNX Runtime session of a verified artifact
    with its serving configuration (imported lazily)."""
    from optkit.artifact.load import load_session as _load_session

    return _load_session(*args, **kwargs)


__all__ = ["__version__", "convert", "load_session"]
