"""Compatibility: ONNX file recognition moved to :mod:`optkit.formats.onnx_format` (below scan/ and
sources/); ``registry.py`` still imports it from here until the registry is rebuilt from the passes."""

from optkit.formats.onnx_format import content_kind, looks_like_onnx, read_head

__all__ = ["content_kind", "looks_like_onnx", "read_head"]
