"""A Hugging Face model id (``org/name``) as the source: resolved to its snapshot folder in the
local hub cache with ``huggingface_hub.snapshot_download`` (offline first; downloaded only when the
cache lacks it and the hub is not offline), in optkit's own process before the worker starts (the
worker has no network). The worker then reads the snapshot folder like any HF model folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from optkit.errors import SourceModelError

TRUE = ("1", "true", "yes", "on")


def looks_like_repo_id(value: str) -> bool:
    """Whether ``value`` reads as a hub model id ``org/name`` (``huggingface_hub``'s own
    validation: letters, digits, ``-_.``, one ``/``, no ``--`` or ``..``)."""
    if value.count("/") != 1 or value.startswith((".", "/", "~")) or value.endswith((".", "/")):
        return False
    try:
        from huggingface_hub.utils import HFValidationError, validate_repo_id
    except ImportError:
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def hub_cache() -> Path:
    """The hub cache folder, read from the environment now (``HF_HUB_CACHE``, else ``HF_HOME/hub``,
    else ``~/.cache/huggingface/hub``); huggingface_hub reads it once at import."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home).expanduser() / "hub"


def resolve_source(source: str | Path) -> Path:
    """The path to load for ``source``: ``source`` itself when it exists (or does not look like a
    hub id), else the snapshot folder of the hub model it names.

    Raises:
        SourceModelError: a hub id that is neither in the cache nor downloadable (offline, no
            network, unknown model), naming the cache folder and the download command.
        DependencyError: a hub id without huggingface_hub installed (the torch extra has it).
    """
    path = Path(source)
    text = str(source)
    if path.exists() or not looks_like_repo_id(text):
        return path
    from huggingface_hub import snapshot_download

    cache = hub_cache()
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in TRUE
    try:
        return Path(snapshot_download(text, cache_dir=str(cache), local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, or a broken cache entry
        cached_error = exc
    if not offline:
        try:
            return Path(snapshot_download(text, cache_dir=str(cache)))
        except Exception as exc:  # no network, unknown or gated repository
            cached_error = exc
    where = f"HF_HUB_CACHE={cache}" if os.environ.get("HF_HUB_CACHE") else f"HF_HOME={cache.parent}"
    raise SourceModelError(
        f"model id {text} is not in the Hugging Face cache ({where})"
        + ("" if offline else f" and could not be downloaded ({type(cached_error).__name__})"),
        f"download it with `hf download {text}` or pass a folder",
    ) from cached_error
