"""``Figure``: the type of a step's free-form figures (``PassOutcome.details``): JSON values only.

Read-only containers (``Sequence``, ``Mapping``) so that a ``list[str]`` or ``dict[str, int]`` is a
figure for a type checker too (pydantic's ``JsonValue``, used where the manifest is validated, is
built from invariant ``list``/``dict``). Floats may be NaN or infinite: the manifest writes them as
``null``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

Figure: TypeAlias = "str | int | float | bool | None | Sequence[Figure] | Mapping[str, Figure]"
"""A JSON value: a scalar, a sequence of figures or a string-keyed mapping of figures."""

__all__ = ["Figure"]
