"""Hugging Face model folders that ship their own code.

transformers imports a folder's own modules when a config names them in ``auto_map``
(https://huggingface.co/docs/transformers/custom_models, loaded with ``trust_remote_code=True``);
without that flag it silently falls back to its built-in class for ``model_type``, so the converted
model is not the one the user runs. Any ``*.py`` file in the folder is treated the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from optkit.scan.report import Finding

CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")


def remote_code_files(folder: Path) -> list[str]:
    """Paths (as strings, sorted) of the configs in ``folder`` with an ``auto_map`` key and of every
    ``*.py`` file below ``folder``. A config that is not valid JSON is left to the loader (which
    refuses it)."""
    found: list[str] = []
    for name in CONFIG_FILES:
        config = folder / name
        if not config.is_file():
            continue
        try:
            data = json.loads(config.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "auto_map" in data:
            found.append(str(config))
    found += [str(p) for p in folder.rglob("*.py") if p.is_file()]
    return sorted(found)


def scan_remote_code(folder: Path) -> list[Finding]:
    """One ``remote-code`` finding per file :func:`remote_code_files` lists."""
    return [
        Finding("remote-code", Path(f).name, f, "auto_map" if f.endswith(".json") else "Python source")
        for f in remote_code_files(folder)
    ]
