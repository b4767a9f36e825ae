"""The one CoNLL reader (optkit.validation.conll): the separators and columns it accepts, streaming,
and the errors it raises (with file and line)."""

from __future__ import annotations

import pytest

from optkit.errors import DataError
from optkit.validation.conll import iter_conll, read_conll

TWO = [(["John", "lives"], ["B-PER", "O"]), (["Paris"], ["B-LOC"])]


@pytest.mark.parametrize(
    "separator",
    ["\n", "\t\n", "  \n", " \t \n", "\t\t\n"],
    ids=["blank", "tab-only", "spaces-only", "mixed-whitespace", "two-tabs"],
)
def test_a_blank_or_whitespace_only_line_ends_a_sentence(tmp_path, separator):
    path = tmp_path / "d.conll"
    path.write_text(f"John\tB-PER\nlives\tO\n{separator}Paris\tB-LOC\n{separator}")
    assert read_conll(path) == TWO


def test_several_separator_lines_make_no_empty_sentence(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("\n\t\n\nJohn\tB-PER\nlives\tO\n\n\n\t\nParis\tB-LOC\n\n")
    assert read_conll(path) == TWO


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "d.conll"
    path.write_bytes(b"John\tB-PER\r\nlives\tO\r\n\t\r\nParis\tB-LOC\r\n")
    assert read_conll(path) == TWO


def test_conll2003_columns_docstart_and_space_separated(tmp_path):
    """CoNLL-2003: ``token POS chunk NER`` separated by spaces, ``-DOCSTART-`` lines between
    documents; the tag is the last column and a document boundary ends a sentence."""
    path = tmp_path / "eng.train"
    path.write_text(
        "-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nlives VBZ B-VP O\n-DOCSTART- -X- -X- O\nParis NNP B-NP B-LOC\n"
    )
    assert read_conll(path) == TWO


def test_tab_columns_keep_first_and_last_and_strip_spaces(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("John \tNNP\t B-PER\nlives\t\tO\n\nParis\tB-LOC")  # no final newline
    assert read_conll(path) == TWO


def test_iter_conll_streams_so_a_bad_line_is_reached_only_when_read(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("a\tO\n\nbroken\n")
    sentences = iter_conll(path)
    assert next(sentences) == (["a"], ["O"])
    with pytest.raises(DataError, match=r"d\.conll line 3: expected 'token<TAB>tag'"):
        next(sentences)


@pytest.mark.parametrize("text", ["", "\n\t\n  \n", "-DOCSTART- -X- -X- O\n\n"], ids=["empty", "blank", "docstart"])
def test_a_file_without_sentences_is_a_data_error(tmp_path, text):
    path = tmp_path / "d.conll"
    path.write_text(text)
    with pytest.raises(DataError, match="holds no sentences"):
        read_conll(path)


def test_not_utf8_is_a_data_error(tmp_path):
    path = tmp_path / "d.conll"
    path.write_bytes(b"caf\xe9\tO\n")
    with pytest.raises(DataError, match="cannot read"):
        read_conll(path)
