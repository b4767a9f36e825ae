"""How many of the most sensitive nodes to keep in float32: the doubling-then-bisection walk both
int8 searches use (:mod:`optkit.search.int8_search`, :mod:`optkit.search.static_search`)."""

from __future__ import annotations

from collections.abc import Callable


def fewest_fp32_nodes(limit: int, passes: Callable[[int], bool | None]) -> None:
    """Try keeping 1, 2, 4, … (capped at ``limit``) nodes in float32 until ``passes(count)`` is True,
    then bisect between the last failing and the first passing count, so that as few nodes as the
    gates allow stay in float32.

    Args:
        limit: the most nodes that may be kept in float32.
        passes: builds and scores the candidate with the first ``count`` nodes in float32; True when
            it passed its gates, False when it failed, None to stop the walk (e.g. budget spent).
    """
    last_fail, first_pass, count = 0, None, 1
    while count <= limit:
        passed = passes(count)
        if passed is None:
            return
        if passed:
            first_pass = count
            break
        last_fail = count
        count = min(count * 2, limit) if count < limit else limit + 1
    while first_pass is not None and first_pass - last_fail > 1:
        middle = (first_pass + last_fail) // 2
        passed = passes(middle)
        if passed is None:
            return
        if passed:
            first_pass = middle
        else:
            last_fail = middle


__all__ = ["fewest_fp32_nodes"]
