"""Arrays across the worker boundary: ``.npy`` files in the worker's scratch folder, read with
``numpy.load(allow_pickle=False)`` so that no object array (which would unpickle code) is accepted."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

Feeds = dict[str, np.ndarray]


class ArrayFolder:
    """Arrays as ``.npy`` files in one folder, named ``<prefix>-<counter>.npy`` (never by a tensor
    name, which could hold ``/`` or ``..``); each side of the wire writes with its own prefix."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder, self.prefix = folder, prefix
        folder.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()

    def write(self, feeds: Feeds) -> list[list[str]]:
        """Save each array; returns ``[[tensor name, file name], ...]`` in order."""
        names = []
        for name, array in feeds.items():
            file = f"{self.prefix}-{next(self._counter)}.npy"
            np.save(self.folder / file, np.ascontiguousarray(array), allow_pickle=False)
            names.append([name, file])
        return names

    def read(self, names: list[list[str]], delete: bool = True) -> Feeds:
        """Load the arrays :meth:`write` listed (``allow_pickle=False``), in order; the files are
        removed afterwards unless ``delete`` is False.

        Raises:
            ValueError: a file name that leaves the folder, or an object array.
        """
        feeds: Feeds = {}
        for name, file in names:
            if Path(file).name != file or not file.endswith(".npy"):
                raise ValueError(f"bad array file name in protocol message: {file!r}")
            path = self.folder / file
            feeds[str(name)] = np.load(path, allow_pickle=False)
            if delete:
                path.unlink(missing_ok=True)
        return feeds
