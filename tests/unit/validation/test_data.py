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
    for starts, tags in zip(vset.word_starts, vset.gold_tags, strict=True):
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


def _token_npz(path, **overrides):
    ids = np.full((3, 6), 7, np.int64)
    arrays = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    arrays.update(overrides)
    np.savez(path, **arrays)
    return str(path)


def test_npz_matching_the_model_loads(tiny, tmp_path):
    vset = load_validation_set(_token_npz(tmp_path / "ok.npz"), _info(tiny, tmp_path), 10, 32)
    assert vset.size == 3 and list(vset.feeds) == ["input_ids", "attention_mask", "token_type_ids"]


@pytest.mark.parametrize(
    "bad,problem",
    [
        (np.full((3, 6), 7.5, np.float32), r"float32 values cannot be cast to int64 without loss"),
        (
            np.full((3,), 7, np.int64),
            (
                r"has shape \(3,\) int64, but the model input 'input_ids' expects "
                r"shape \(batch, sequence\) int64 \(rank 2\)"
            ),
        ),
    ],
)
def test_npz_array_of_wrong_dtype_or_rank_names_input_and_expectation(tiny, tmp_path, bad, problem):
    with pytest.raises(DataError, match=problem) as err:
        load_validation_set(_token_npz(tmp_path / "bad.npz", input_ids=bad), _info(tiny, tmp_path), 10, 32)
    assert "input_ids" in err.value.message and "\n" not in err.value.one_line()


def test_npz_fixed_axis_must_match(tmp_path):
    from optkit.io_spec import TensorSpec

    info = ModelInfo(input_names=["X"], input_specs={"X": TensorSpec("X", "float32", ("batch", 13))})
    np.savez(tmp_path / "x.npz", X=np.zeros((4, 12)))
    with pytest.raises(DataError, match=r"expects shape \(batch, 13\) float32 \(axis 1 differs\)"):
        load_validation_set(str(tmp_path / "x.npz"), info, 10, 8)
    np.savez(tmp_path / "ints.npz", X=np.zeros((4, 13), np.int64))  # integers may feed a float input
    assert load_validation_set(str(tmp_path / "ints.npz"), info, 10, 8).size == 4


def test_npz_gold_labels_of_wrong_length(tmp_path):
    np.savez(tmp_path / "y.npz", X=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match="'y' has 3 labels for 4 samples"):
        load_validation_set(str(tmp_path / "y.npz"), ModelInfo(input_names=["X"]), 10, 8)


def test_conll_unknown_tag_in_a_later_sentence_lists_valid_labels(tiny, tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("john\tB-PER\n\nparis\tB-LOC\nrome\tB-CITY\n")
    with pytest.raises(DataError, match=r"B-CITY.*not labels of the model") as err:
        load_validation_set(str(path), _info(tiny, tmp_path), 10, 32)
    assert "B-LOC" in err.value.hint  # the valid labels are listed


# --------------------------------------------------------------------------- big and hostile data
BIG = 50_000_000  # bytes: far more than 512 samples need

PEAK_CHILD = r"""
import json, resource, sys
from pathlib import Path
from optkit.io_spec import ModelInfo
from optkit.sources import torch_source
from optkit.validation.data import load_validation_set, read_text

kind, data, model, work = sys.argv[1:]
info = torch_source.load(Path(model), Path(work)).info if kind != "npz" else ModelInfo(input_names=["x"])
if kind == "conll":  # the tokenizer's own memory is not the reader's
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(info.hf_dir)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
size = len(read_text(Path(data), 512)) if kind == "text" else load_validation_set(data, info, 512, 32).size
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kb": after - before, "size": size}))
"""


def _big_file(tmp_path, kind, tiny):
    path = tmp_path / f"big.{kind}"
    if kind == "npz":
        np.savez(path, x=np.ones((BIG // 256, 64), np.float32))
        return path
    unit = tiny["conll"].read_text().strip() + "\n\n" if kind == "conll" else "a tweet about the weather\n" * 100
    with open(path, "w") as handle:
        for _ in range(BIG // len(unit) + 1):
            handle.write(unit)
    return path


@pytest.mark.parametrize("kind", ["conll", "text", "npz"])
def test_readers_stream_and_stop_at_max_samples(tiny, tmp_path, kind):
    """Peak memory of a child reading a 50 MB file for 512 samples grows by far less than the file."""
    import json
    import subprocess
    import sys

    path = _big_file(tmp_path, kind, tiny)
    assert path.stat().st_size >= BIG * 0.95
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_CHILD, kind, str(path), str(tiny["pt"]), str(work)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["size"] == 512
    assert figures["grew_kb"] * 1024 < path.stat().st_size / 4, figures  # reading it whole: ≥ the file size


def test_read_conll_stops_at_max_sentences_before_a_bad_line(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("a\tO\n\nb\tO\n\nbroken-line-without-tag\n")
    assert read_conll(path, 2) == [(["a"], ["O"]), (["b"], ["O"])]
    with pytest.raises(DataError, match="line 5"):
        read_conll(path)


def test_npz_is_sliced_and_gold_labels_follow(tmp_path):
    path = tmp_path / "x.npz"
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.savez_compressed(path, x=x, y=np.arange(10))
    vset = load_validation_set(str(path), ModelInfo(input_names=["x"]), 3, 8)
    assert np.array_equal(vset.feeds["x"], x[:3]) and list(vset.gold_labels) == [0, 1, 2]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_float_inputs_is_a_data_error(tmp_path, bad):
    path = tmp_path / "x.npz"
    x = np.ones((6, 4), np.float32)
    x[0, 1] = x[2, 3] = x[5, 0] = bad
    np.savez(path, x=x)
    with pytest.raises(DataError) as err:
        load_validation_set(str(path), ModelInfo(input_names=["x"]), 10, 8)
    assert err.value.one_line().startswith("data error: input 'x' holds 3 NaN/Inf values")
    with pytest.raises(DataError, match="holds 1 NaN/Inf values"):  # counted in the samples used
        load_validation_set(str(path), ModelInfo(input_names=["x"]), 2, 8)
    np.savez(path, x=np.ones((6, 4), np.float32), ids=np.zeros((6, 4), np.int64))
    assert load_validation_set(str(path), ModelInfo(input_names=["x", "ids"]), 10, 8).size == 6


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="object arrays"):
        load_validation_set(str(path), ModelInfo(input_names=["x"]), 10, 8)


def test_float64_values_beyond_float32_range_are_a_data_error(tmp_path):
    """1e300 is finite in float64 but Inf once the model casts it to float32: named as data, not
    blamed on the exporter."""
    path = tmp_path / "big.npz"
    x = np.ones((4, 3))
    x[3, 2] = 1e300
    np.savez(path, X=x)
    with pytest.raises(DataError, match="input 'X' holds 1 value\\(s\\) beyond float32's range"):
        load_validation_set(str(path), ModelInfo(input_names=["X"]), 10, 8)


@pytest.mark.parametrize("suffix", [".txt", ".conll"])
def test_a_line_too_long_to_be_an_example_is_a_data_error_read_with_a_bound(tmp_path, suffix):
    from optkit.validation.data import read_conll, read_text
    from optkit.validation.lines import MAX_LINE_CHARS

    path = tmp_path / f"one-line{suffix}"
    path.write_text("word " * (MAX_LINE_CHARS // 2) + "\n")
    reader = read_text if suffix == ".txt" else read_conll
    with pytest.raises(DataError, match="line 1 is longer than 100,000 characters"):
        reader(path, 10)
