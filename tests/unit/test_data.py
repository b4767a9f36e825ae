"""Validation data: CoNLL parsing, tokenisation with word starts, npz checks, shaping for timing."""

from __future__ import annotations

import numpy as np
import pytest

from optkit.errors import DataError
from optkit.io_spec import ModelInfo
from optkit.validation.data import ValidationSet, load_validation_set, read_conll


def _info(tiny, tmp_path):
    from optkit.sources import torch_source

    return torch_source.load(tiny["pt"], tmp_path).info


def test_read_conll_sentences(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("John\tB-PER\nlives\tO\n\t\nParis\tB-LOC\n")
    assert read_conll(path) == [(["John", "lives"], ["B-PER", "O"]), (["Paris"], ["B-LOC"])]


def test_read_conll_bad_line_names_line(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("John\tB-PER\nlonely\n")
    with pytest.raises(DataError, match="line 2"):
        read_conll(path)


def test_conll_set_word_starts_and_gold(tiny, tmp_path):
    vset = load_validation_set(str(tiny["conll"]), _info(tiny, tmp_path), 10, 32)
    assert vset.kind == "conll" and vset.size == 10 and vset.is_real
    assert len(vset.gold_tags) == 10
    ids = vset.feeds["input_ids"]
    assert ids.dtype == np.int64 and ids.shape[0] == 10
    for starts, tags in zip(vset.word_starts, vset.gold_tags):
        assert len(starts) == len(tags) and starts == sorted(starts) and starts[0] == 1  # after [CLS]


def test_conll_unknown_tag_is_data_error(tiny, tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("john\tB-PERSON\n")
    with pytest.raises(DataError, match="B-PERSON"):
        load_validation_set(str(path), _info(tiny, tmp_path), 10, 32)


def test_truncation_is_counted(tiny, tmp_path):
    path = tmp_path / "long.conll"
    path.write_text("".join("john\tB-PER\n" for _ in range(50)))
    vset = load_validation_set(str(path), _info(tiny, tmp_path), 10, 16)
    assert vset.truncated_words == 50 - 14  # 16 tokens minus [CLS]/[SEP]


def test_npz_names_must_match(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, input_ids=np.zeros((2, 4), np.int64))
    info = ModelInfo(input_names=["input_ids", "attention_mask"])
    with pytest.raises(DataError, match="attention_mask"):
        load_validation_set(str(path), info, 10, 8)


def test_npz_loads(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.ones((5, 3), np.float32))
    vset = load_validation_set(str(path), ModelInfo(input_names=["x"]), 4, 8)
    assert vset.kind == "npz" and vset.size == 4 and vset.sha256


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_validation_set(str(tmp_path / "none.conll"), ModelInfo(), 1, 8)
    other = tmp_path / "x.csv"
    other.write_text("a,b")
    with pytest.raises(DataError, match="unsupported"):
        load_validation_set(str(other), ModelInfo(), 1, 8)


def test_random_needs_a_tokenizer():
    with pytest.raises(DataError, match="no validation data"):
        load_validation_set(None, ModelInfo(input_names=["x"]), 4, 8)


def test_random_set_is_labelled(tiny, tmp_path):
    vset = load_validation_set(None, _info(tiny, tmp_path), 8, 16)
    assert vset.kind == "random" and not vset.is_real and "random" in vset.origin


def test_shaped_pads_truncates_and_cycles():
    feeds = {"input_ids": np.array([[5, 6, 7], [8, 9, 0]]), "attention_mask": np.array([[1, 1, 1], [1, 1, 0]])}
    vset = ValidationSet("npz", "x", feeds, {"input_ids": 0, "attention_mask": 0})
    out = vset.shaped(3, 5)
    assert out["input_ids"].shape == (3, 5)
    assert out["input_ids"][2].tolist() == [5, 6, 7, 0, 0]  # cycled first row, padded
    assert vset.shaped(1, 2)["attention_mask"].tolist() == [[1, 1]]
