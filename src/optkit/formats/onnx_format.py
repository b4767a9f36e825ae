"""Recognise an ONNX file by its first bytes, without importing onnx.

An ONNX file is a serialized ``ModelProto``. Serializers write fields in number order, so the file
starts with field 1, ``ir_version`` (tag byte ``0x08``, then a small varint: 3 to 11 today), followed
by the tag of another ``ModelProto`` field (producer name, graph, opset import, ...). A zip archive
(TorchScript, ``.pt2``, ``.keras``, ``.skops``) starts with ``PK``; a pickle with ``0x80``.
"""

from __future__ import annotations

from pathlib import Path

IR_VERSION_TAG = 0x08
MAX_IR_VERSION = 15
# tags of ModelProto fields 2-8 (producer_name, producer_version, domain, model_version, doc_string,
# graph, opset_import), 14 (metadata_props), 20 (training_info, 0xa2 0x01) and 25 (functions, 0xca 0x01)
NEXT_FIELD_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA})


def read_head(path: Path, size: int = 8) -> bytes:
    """The first ``size`` bytes of a file (fewer for a shorter file; empty for a folder or an unreadable file)."""
    if not path.is_file():
        return b""
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def looks_like_onnx(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts like a serialized ONNX ``ModelProto``."""
    return (
        len(head) >= 3 and head[0] == IR_VERSION_TAG and 1 <= head[1] <= MAX_IR_VERSION and head[2] in NEXT_FIELD_TAGS
    )


def content_kind(head: bytes) -> str:
    """A short description of what a file's first bytes look like, for error messages:
    ``"ONNX"``, ``"a zip archive"``, ``"a pickle"``, ``"text"``, ``"empty"`` or ``"unknown binary"``."""
    if not head:
        return "empty"
    if looks_like_onnx(head):
        return "ONNX"
    if head.startswith(b"PK"):
        return "a zip archive"
    if head[:1] == b"\x80":
        return "a pickle"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unknown binary"
