"""Bounded, streaming line reading for data files (CoNLL and text): one line at a time, never more
than :data:`MAX_LINE_CHARS` characters of one line in memory, errors naming the file and line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from optkit.errors import DataError

#: longest line a data file may hold (characters): one example of text or one CoNLL token; a longer
#: one is not a text example (a binary or minified file) and would cost memory and time to tokenize
MAX_LINE_CHARS = 100_000


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file, read lazily, each line read with a bound.

    Line numbers start at 1; the line comes without its ``\\n`` / ``\\r\\n`` ending.

    Raises:
        DataError: unreadable, not UTF-8, or a line longer than :data:`MAX_LINE_CHARS`.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            number = 0
            while line := handle.readline(MAX_LINE_CHARS + 1):
                number += 1
                if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
                    raise DataError(
                        f"{path} line {number} is longer than {MAX_LINE_CHARS:,} characters: not one "
                        "text example or CoNLL token",
                        "pass one example per line (.txt) or token<TAB>tag lines (.conll)",
                    )
                yield number, line.rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", "pass a UTF-8 text file") from exc
