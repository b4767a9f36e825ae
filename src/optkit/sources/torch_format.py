"""Compatibility: PyTorch file recognition moved to :mod:`optkit.formats.torch_format` (below scan/
and sources/); ``registry.py`` and older callers still import it from here."""

from optkit.formats.torch_format import embedded_model_info, is_torch_archive, read_embedded, sniff, zip_names

__all__ = ["embedded_model_info", "is_torch_archive", "read_embedded", "sniff", "zip_names"]
