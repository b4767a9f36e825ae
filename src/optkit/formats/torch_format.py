"""Recognise PyTorch files without loading them (no framework import, no unpickling).

A TorchScript archive, a ``torch.export`` program (``.pt2``) and a ``torch.save`` pickle are all
zip files; they differ by their entries (``<archive>/code/`` for TorchScript,
``<archive>/archive_format`` and ``<archive>/models/`` for torch.export). Embedded metadata lives in
``<archive>/extra/optkit/...`` (``_extra_files`` / ``extra_files`` when saving).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from optkit.errors import SourceModelError

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
EXTRA_PREFIX = "extra/optkit/"


def sniff(path: Path) -> str:
    """Return ``"torchscript"``, ``"torch.export"``, ``"pickle"`` or ``"hf"`` for ``path``.

    Raises:
        SourceModelError: the file is not a PyTorch file, or is truncated/corrupt.
    """
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hf"
        raise SourceModelError(
            f"{path} is a folder without config.json",
            "pass a Hugging Face model folder, a .pt (TorchScript) or a .pt2 file",
        )
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(PICKLE_MAGIC):
        return "pickle"  # legacy (non-zip) torch.save
    if not head.startswith(b"PK"):
        raise SourceModelError(
            f"{path} is not a PyTorch file (no zip or pickle header)",
            "pass a TorchScript .pt, a torch.export .pt2 or a HF model folder",
        )
    names = zip_names(path)
    if any("/code/" in n for n in names):
        return "torchscript"
    if any(n.endswith("/archive_format") for n in names) or any("/models/" in n for n in names):
        return "torch.export"
    if any(n.endswith("data.pkl") for n in names):
        return "pickle"
    raise SourceModelError(
        f"{path} is a zip file but not a PyTorch archive",
        "pass a TorchScript .pt, a torch.export .pt2 or a HF model folder",
    )


def is_torch_archive(path: Path) -> bool:
    """True when ``path`` is a zip laid out like a TorchScript, torch.export or ``torch.save`` archive.

    Reads only the zip's central directory (no CRC check, no unpickling), so it is cheap enough for
    framework detection; a damaged zip gives False.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return False
    return any("/code/" in n or n.endswith(("/archive_format", "/data.pkl")) or "/models/" in n for n in names)


def zip_names(path: Path) -> list[str]:
    """Entry names of the zip at ``path``; SourceModelError if it is truncated or corrupt."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise SourceModelError(
            f"{path} is truncated or corrupt ({exc})", "re-save the model, or copy the file again"
        ) from exc
    if bad is not None:
        raise SourceModelError(f"{path} is corrupt (bad CRC in entry {bad})", "re-save the model")
    return names


def read_embedded(path: Path) -> dict[str, str]:
    """Files embedded under ``extra/optkit/`` in a TorchScript or torch.export archive.

    Returns:
        ``{relative name: text}``, e.g. ``{"model_info.json": "...", "hf/config.json": "..."}``.
    """
    out: dict[str, str] = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            idx = name.find("/" + EXTRA_PREFIX)
            if idx >= 0:
                rel = name[idx + 1 + len(EXTRA_PREFIX) :]
                out[rel] = archive.read(name).decode("utf-8")
    return out


def embedded_model_info(embedded: dict[str, str]) -> dict:
    """The parsed ``model_info.json`` from :func:`read_embedded`, or ``{}``."""
    text = embedded.get("model_info.json")
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceModelError(
            f"embedded optkit/model_info.json is not valid JSON ({exc})", "re-save the model with valid metadata"
        ) from exc
