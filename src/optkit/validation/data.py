"""Validation inputs: the user's data (CoNLL, text, ``.npz``, a folder of images or sound files: see
:mod:`optkit.validation.media`), or generated random inputs (tokens, pixels, noise) as a last
resort (labelled so in the report; gates that need labels are then skipped).

Readers stream: a CoNLL file (read by :mod:`optkit.validation.conll`, the project's one CoNLL
reader) or a text file is read line by line and reading stops once ``max_samples``
examples are collected; an ``.npz`` array is read from its header and only its first
``max_samples`` rows are loaded. (The data's sha256 still reads the whole file, in chunks.)
"""

from __future__ import annotations

import itertools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from optkit.errors import DataError, missing_dependency
from optkit.hashing import hash_path, sha256_file
from optkit.io_spec import ModelInfo, TensorSpec
from optkit.paths import require_regular
from optkit.runners.base import Feeds
from optkit.validation import media
from optkit.validation.conll import read_conll
from optkit.validation.lines import read_lines

#: how validation batches are padded (recipe ``validation.padding``; see :meth:`ValidationSet.batches`)
Padding = Literal["fixed", "per-batch"]


@dataclass
class ValidationSet:
    """Validation inputs, all samples padded to one length.

    Attributes:
        kind: ``"conll"``, ``"text"``, ``"npz"``, ``"images"``, ``"audio"`` or ``"random"``.
        origin: the file path, or a description of how inputs were generated.
        feeds: ``{input name: array}``; axis 0 is the sample axis (N samples).
        pad_values: value used to pad each input along axis 1 (token inputs), e.g. ``{"input_ids": 0}``.
        gold_tags: per sample, the gold tag of each (kept) word (CoNLL only).
        word_starts: per sample, the token position of each kept word's first sub-token (CoNLL only).
        gold_labels: per sample gold class labels (``y`` in an ``.npz``), if given.
        truncated_words: words dropped because a sentence exceeded ``sequence_length`` tokens.
        sha256: sha256 of the data file, if any.
        fixed_length: the sequence length the model itself fixes (a ``.pt2`` or Keras model
            declaring axis 1 of a token input as a number), or None. Timing and searches then use
            this length, whatever ``benchmark.sequence_lengths`` asks for: the model takes no other.
        length_range: ``(min, max)`` lengths the model takes (``max`` None: unbounded), or None;
            requested lengths outside it are clamped into it (:meth:`model_length`).
    """

    kind: str
    origin: str
    feeds: Feeds
    pad_values: dict[str, int] = field(default_factory=dict)
    gold_tags: list[list[str]] | None = None
    word_starts: list[list[int]] | None = None
    truncated_words: int = 0
    gold_labels: np.ndarray | None = None
    sha256: str | None = None
    fixed_length: int | None = None
    length_range: tuple[int, int | None] | None = None

    def model_length(self, requested: int) -> int:
        """The sequence length to run at when ``requested`` is asked for: the model's fixed length,
        or ``requested`` clamped into :attr:`length_range` (a ``.pt2`` exported for 2..48 tokens is
        timed at 48 when 128 is asked for)."""
        if self.fixed_length:
            return self.fixed_length
        if self.length_range is not None:
            low, high = self.length_range
            requested = max(requested, low)
            return min(requested, high) if high is not None else requested
        return requested

    @property
    def size(self) -> int:
        """Number of samples N."""
        return len(next(iter(self.feeds.values())))

    @property
    def is_real(self) -> bool:
        """False when the inputs were generated (random) rather than read from data."""
        return self.kind != "random"

    def batches(self, batch_size: int, padding: Padding = "fixed") -> list[Feeds]:
        """Consecutive batches of at most ``batch_size`` samples, in order.

        Args:
            batch_size: samples per batch.
            padding: ``"fixed"``: every batch keeps the set's own length (the whole set padded to
                its longest example, or the model's fixed length); ``"per-batch"``: token inputs are
                cut to the batch's longest example (its real tokens by ``attention_mask``), as a
                server that pads each request to its longest does (see :meth:`batch_length`).
        """
        batches = [{k: v[i : i + batch_size] for k, v in self.feeds.items()} for i in range(0, self.size, batch_size)]
        if padding == "per-batch" and self.pads_per_batch:
            batches = [self._trim(batch) for batch in batches]
        return batches

    @property
    def sequence_length(self) -> int | None:
        """Axis 1 of the token inputs (the set's padded length T), or None without token inputs."""
        names = self.token_inputs
        return int(self.feeds[names[0]].shape[1]) if names else None

    @property
    def token_inputs(self) -> list[str]:
        """Inputs padded along axis 1 (names in :attr:`pad_values` of rank 2 and up)."""
        return [n for n in self.feeds if n in self.pad_values and self.feeds[n].ndim >= 2]

    @property
    def pads_per_batch(self) -> bool:
        """Whether per-batch padding can differ from the fixed length: the set has token inputs and
        an ``attention_mask`` that tells real tokens from padding, and the model does not fix its
        length. (Without a mask the padding cannot be told from real tokens, so nothing is cut.)"""
        return bool(self.token_inputs) and "attention_mask" in self.token_inputs and not self.fixed_length

    def batch_length(self, batch: Feeds) -> int:
        """The length a batch is padded to per batch: its longest example's real tokens (the last
        position where ``attention_mask`` is set, plus one), at least 1 and raised to the model's
        minimum length (:attr:`length_range`); at most the set's length."""
        full = self.sequence_length or 0
        mask = np.asarray(batch["attention_mask"])
        real = np.flatnonzero(mask.reshape(mask.shape[0], mask.shape[1], -1).any(axis=(0, 2)))
        length = int(real[-1]) + 1 if real.size else 1
        if self.length_range is not None:
            length = max(length, self.length_range[0])
        return min(max(length, 1), full)

    def _trim(self, batch: Feeds) -> Feeds:
        length = self.batch_length(batch)
        tokens = set(self.token_inputs)
        return {k: np.ascontiguousarray(v[:, :length]) if k in tokens else v for k, v in batch.items()}

    def shaped(self, batch_size: int, sequence_length: int | None) -> Feeds:
        """Real inputs at an exact shape for timing: the first ``batch_size`` samples (cycled when
        there are fewer), padded or truncated along axis 1 to ``sequence_length`` (token inputs),
        or to :attr:`fixed_length` when the model fixes it."""
        sequence_length = self.model_length(sequence_length) if sequence_length is not None else None
        rows = np.arange(batch_size) % self.size
        out = {}
        for name, value in self.feeds.items():
            arr = value[rows]
            if sequence_length is not None and arr.ndim >= 2 and name in self.pad_values:
                if arr.shape[1] >= sequence_length:
                    arr = arr[:, :sequence_length]
                else:
                    pad = [(0, 0), (0, sequence_length - arr.shape[1])] + [(0, 0)] * (arr.ndim - 2)
                    arr = np.pad(arr, pad, constant_values=self.pad_values[name])
            out[name] = np.ascontiguousarray(arr)
        return out


def load_validation_set(
    data: str | None, info: ModelInfo, max_samples: int, sequence_length: int, seed: int = 0
) -> ValidationSet:
    """Load validation inputs for a model.

    Args:
        data: path to a ``.conll``/``.txt``/``.npz`` file, a folder of images (image models) or
            sound files (audio models), or ``None`` to generate random inputs.
        info: the source model's names, task and tokenizer folder.
        max_samples: use at most this many samples (the first ones, in file order).
        sequence_length: tokens per example; longer examples are truncated (counted in the report).
        seed: seed for generated inputs.

    Raises:
        DataError: missing file, a path that is not a regular file or folder (FIFO, device,
            socket: refused without opening it), a folder for a model that takes neither images
            nor audio, unreadable file, bad format (with line number), unknown labels, input
            names that do not match the model, NaN/Inf in a float input, or no way to build inputs.
    """
    if data is None:
        return _random_set(info, min(max_samples, 64), sequence_length, seed)
    path = require_regular(data, "validation data", DataError, allow_dir=True)
    if path.is_dir():
        return _folder_set(path, info, max_samples)
    digest = sha256_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        vset = _npz_set(path, info, max_samples)
    elif suffix in (".conll", ".tsv", ".bio", ".iob"):
        vset = _conll_set(path, info, max_samples, sequence_length)
    elif suffix in (".txt", ".text") and _string_input(info) is not None:
        vset = _string_lines_set(path, info, max_samples)
    elif suffix in (".txt", ".text"):
        vset = _text_set(path, info, max_samples, sequence_length)
    else:
        raise DataError(
            f"unsupported validation data format '{suffix}' ({data})",
            "use .conll (token<TAB>tag), .txt (one example per line) or .npz (input arrays)",
        )
    vset.sha256 = digest
    return vset


def read_text(path: Path, max_lines: int | None = None) -> list[str]:
    """The non-blank lines of a UTF-8 text file (stripped), reading stops after ``max_lines``.

    Raises:
        DataError: unreadable or not UTF-8.
    """
    stripped = (line.strip() for _, line in read_lines(path))
    return list(itertools.islice((line for line in stripped if line), max_lines))


def _tokenizer(info: ModelInfo):
    """The model's tokenizer, loaded here (optkit's own, unconfined process) from data files only:
    ``trust_remote_code=False`` (a tokenizer that needs its own Python code is refused, never run
    here) and ``local_files_only``.

    Raises:
        DataError: no tokenizer, or one that cannot be loaded from its files.
    """
    if not info.hf_dir:
        raise DataError(
            "the source model carries no tokenizer, so text data cannot be encoded",
            "pass --data inputs.npz with one array per model input",
        )
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise missing_dependency("transformers", "torch") from exc
    try:
        return AutoTokenizer.from_pretrained(info.hf_dir, trust_remote_code=False, local_files_only=True)
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for unusable folders
        raise DataError(
            f"cannot load the model's tokenizer from its files: {type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0][:200]}",
            "pass --data inputs.npz with one array per model input (a tokenizer that needs its "
            "own code is never run in optkit's process)",
        ) from exc


def _encode(tokenizer, texts, info: ModelInfo, sequence_length: int, split_words: bool):
    enc = tokenizer(
        texts,
        is_split_into_words=split_words,
        truncation=True,
        max_length=sequence_length,
        padding="longest",
        return_tensors="np",
    )
    missing = [n for n in info.input_names if n not in enc]
    if missing:
        raise DataError(
            f"the tokenizer does not produce model input(s) {missing}",
            "pass --data inputs.npz with one array per model input",
        )
    feeds = {n: enc[n].astype(np.int64) for n in info.input_names}
    return enc, feeds, _pad_values(tokenizer, info.input_names)


def _pad_values(tokenizer, names: list[str]) -> dict[str, int]:
    """Padding per token input: the tokenizer's pad id for ``input_ids``, 0 for masks and type ids."""
    return {n: (tokenizer.pad_token_id or 0) if n == "input_ids" else 0 for n in names}


def _conll_set(path: Path, info: ModelInfo, max_samples: int, sequence_length: int) -> ValidationSet:
    sentences = read_conll(path, max_samples)
    if info.labels:
        unknown = sorted({t for _, tags in sentences for t in tags} - set(info.labels))
        if unknown:
            raise DataError(
                f"{path}: tags {unknown[:5]} are not labels of the model",
                f"the model's labels are {', '.join(info.labels[:12])}",
            )
    tokenizer = _tokenizer(info)
    enc, feeds, pads = _encode(tokenizer, [w for w, _ in sentences], info, sequence_length, True)
    gold, starts, truncated = [], [], 0
    for i, (words, tags) in enumerate(sentences):
        first: dict[int, int] = {}
        for pos, word_id in enumerate(enc.word_ids(i)):
            if word_id is not None and word_id not in first:
                first[word_id] = pos
        kept = [w for w in range(len(words)) if w in first]
        truncated += len(words) - len(kept)
        gold.append([tags[w] for w in kept])
        starts.append([first[w] for w in kept])
    return ValidationSet("conll", str(path), feeds, pads, gold, starts, truncated)


def _text_set(path: Path, info: ModelInfo, max_samples: int, sequence_length: int) -> ValidationSet:
    lines = read_text(path, max_samples)
    if not lines:
        raise DataError(f"{path} is empty", "put one example per line")
    _, feeds, pads = _encode(_tokenizer(info), lines, info, sequence_length, False)
    return ValidationSet("text", str(path), feeds, pads)


def _string_input(info: ModelInfo) -> TensorSpec | None:
    """The model's one string input of shape ``(batch,)`` (a text pipeline), or None."""
    specs = [info.input_specs.get(n) for n in info.input_names]
    if len(specs) == 1 and specs[0] is not None and specs[0].dtype == "str" and len(specs[0].shape) == 1:
        return specs[0]
    return None


def _string_lines_set(path: Path, info: ModelInfo, max_samples: int) -> ValidationSet:
    """A model that takes one string per sample (a scikit-learn text pipeline): each non-blank line
    of the file is one sample, as is (no tokenizer), in a ``(N,)`` str array."""
    lines = read_text(path, max_samples)
    if not lines:
        raise DataError(f"{path} is empty", "put one example per line")
    return ValidationSet("text", str(path), {info.input_names[0]: np.array(lines, dtype=str)})


class _Head:
    """The first rows of one ``.npz`` array and the full array's shape (``shape``, ``ndim`` and
    ``dtype`` describe the whole array, ``rows`` holds at most the rows that were asked for)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, rows: np.ndarray) -> None:
        self.shape, self.dtype, self.rows = shape, dtype, rows
        self.ndim = len(shape)


def read_npz_heads(path: Path, max_rows: int) -> dict[str, _Head]:
    """Read each array of an ``.npz`` lazily: its header, then only its first ``max_rows`` rows
    along axis 0 (the whole array when it is 0-d or stored in Fortran order).

    Raises:
        DataError: not a zip of ``.npy`` arrays, a damaged array, or an object (pickled) array.
    """
    heads: dict[str, _Head] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    heads[member[: -len(".npy")]] = _read_head(handle, max_rows)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}", "save inputs with numpy.savez") from exc
    if not heads:
        raise DataError(f"cannot read {path} as .npz: it holds no arrays", "save inputs with numpy.savez")
    return heads


def _read_head(handle, max_rows: int) -> _Head:
    fmt = np.lib.format
    version = fmt.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(handle)
    else:  # 3.0 (UTF-8 field names): no public reader
        shape, fortran, dtype = fmt._read_array_header(handle, version)  # type: ignore[attr-defined]
    if dtype.hasobject:
        raise ValueError("object arrays are not supported (they would be unpickled)")
    if not shape or fortran:
        count = int(np.prod(shape, dtype=np.int64))
        rows = np.frombuffer(_read_exact(handle, count * dtype.itemsize), dtype=dtype).reshape(
            shape, order="F" if fortran else "C"
        )
        return _Head(tuple(shape), dtype, rows[:max_rows] if shape else rows)
    take = min(shape[0], max_rows)
    per_row = int(np.prod(shape[1:], dtype=np.int64))
    rows = np.frombuffer(_read_exact(handle, take * per_row * dtype.itemsize), dtype=dtype)
    return _Head(tuple(shape), dtype, rows.reshape((take, *shape[1:])).copy())


def _read_exact(handle, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise ValueError(f"array data is truncated ({len(data)} of {size} bytes)")
    return data


def _npz_set(path: Path, info: ModelInfo, max_samples: int) -> ValidationSet:
    arrays = read_npz_heads(path, max_samples)
    expected = set(info.input_names)
    gold = arrays.pop("y", None) if "y" not in expected else None
    if len(expected) == 1 and len(arrays) == 1:  # one input: the array's name does not matter
        arrays = {info.input_names[0]: next(iter(arrays.values()))}
    if expected and set(arrays) != expected:
        raise DataError(
            f"{path} has arrays {sorted(arrays)} but the model's inputs are {sorted(expected)}",
            "name each array after a model input (plus optional gold labels 'y')",
        )
    sizes = {k: v.shape[0] if v.ndim else 0 for k, v in arrays.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise DataError(
            f"{path}: arrays need the same non-empty sample axis 0, got {sizes}",
            "stack samples along axis 0 in every array",
        )
    order = info.input_names or sorted(arrays)
    for name, spec in info.input_specs.items():
        if name in arrays:
            check_against_spec(path, arrays[name], spec)
    feeds = {k: arrays[k].rows for k in order}
    for name, value in feeds.items():
        check_finite(path, name, value)
    pads = {k: 0 for k, v in feeds.items() if v.ndim >= 2 and np.issubdtype(v.dtype, np.integer)}
    if gold is not None and gold.shape[:1] != (sizes[order[0]],):
        raise DataError(
            f"{path}: 'y' has {gold.shape[0] if gold.ndim else 0} labels for {sizes[order[0]]} samples",
            "give one gold label per sample",
        )
    vset = ValidationSet("npz", str(path), feeds, pads)
    vset.fixed_length = fixed_length(info, list(pads))
    vset.length_range = info.sequence_range
    vset.gold_labels = gold.rows if gold is not None else None
    return vset


def fixed_length(info: ModelInfo, token_inputs: list[str]) -> int | None:
    """The sequence length the model fixes: axis 1 of the first of ``token_inputs`` whose declared
    spec gives it as a number (a ``.pt2`` traced at length 32, a Keras ``Input(shape=(32,))``), else None."""
    for name in token_inputs:
        spec = info.input_specs.get(name)
        if spec is not None and len(spec.shape) >= 2 and isinstance(spec.shape[1], int):
            return spec.shape[1]
    return None


def check_finite(path: Path, name: str, array: np.ndarray) -> None:
    """Refuse NaN or infinite values in a floating-point input array (they make every comparison
    meaningless: the source and the artifact both give NaN, and the gates would measure nothing),
    and float64 values beyond float32's range (the models run in float32, where they become Inf).

    Raises:
        DataError: ``input '<name>' holds <n> NaN/Inf values`` or values beyond float32's range,
            naming the file.
    """
    if array.dtype.kind not in "fc":
        return
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise DataError(
            f"input '{name}' holds {bad} NaN/Inf values ({path})",
            "replace or drop the samples with NaN/Inf before validating",
        )
    limit = float(np.finfo(np.float32).max)
    if array.dtype.itemsize > 4 and array.dtype.kind == "f":
        huge = int(np.count_nonzero(np.abs(array) > limit))
        if huge:
            raise DataError(
                f"input '{name}' holds {huge} value(s) beyond float32's range (|x| > {limit:.3g}), "
                f"which become Inf in the model ({path})",
                "rescale or drop those samples before validating",
            )


def check_against_spec(path: Path, array: np.ndarray | _Head, spec: TensorSpec) -> None:
    """Check one data array against the model input it feeds.

    The rank must match, every fixed size after the sample axis 0 must match, and the values must
    convert to the input's dtype without loss of meaning: integers and booleans may feed a float input
    (they are cast), floats may not feed an integer or boolean input (token ids, masks).

    Raises:
        DataError: naming the input, the array's shape and dtype, and the expected ones.
    """
    expected = f"shape ({', '.join(str(d) for d in spec.shape)}) {spec.dtype}"
    got = f"array '{spec.name}' in {path} has shape {tuple(array.shape)} {array.dtype}"
    hint = "save one array per model input with the model's dtype; axis 0 is the sample axis"
    if array.ndim != len(spec.shape):
        raise DataError(f"{got}, but the model input '{spec.name}' expects {expected} (rank {len(spec.shape)})", hint)
    wrong = [
        axis for axis, dim in enumerate(spec.shape) if axis > 0 and isinstance(dim, int) and array.shape[axis] != dim
    ]
    if wrong:
        raise DataError(f"{got}, but the model input '{spec.name}' expects {expected} (axis {wrong[0]} differs)", hint)
    want = np.dtype(spec.dtype)
    if want.kind == "U" and array.dtype.kind != "U":
        raise DataError(
            f"{got}, but the model input '{spec.name}' expects {expected} (strings)",
            "save strings as a numpy str array (numpy.array(texts, dtype=str)), not bytes or objects",
        )
    if want.kind in "iub" and array.dtype.kind not in "iub" or want.kind == "f" and array.dtype.kind not in "fiub":
        raise DataError(
            f"{got}, but the model input '{spec.name}' expects {expected} "
            f"({array.dtype} values cannot be cast to {want} without loss)",
            hint,
        )


def _folder_set(folder: Path, info: ModelInfo, max_samples: int) -> ValidationSet:
    """Images or sound files of ``folder``, preprocessed by the model's processor (see
    :mod:`optkit.validation.media`); the data's sha256 covers every file of the folder."""
    if media.is_image_model(info):
        feeds = media.image_feeds(folder, info, max_samples)
        kind = "images"
    elif media.is_audio_model(info):
        feeds = media.audio_feeds(folder, info, max_samples)
        kind = "audio"
    else:
        raise DataError(
            f"validation data {folder} is a folder, but the model takes {info.input_names or 'unknown inputs'}, "
            "not images or audio",
            "pass a file: .conll, .txt or .npz",
        )
    for name, spec in info.input_specs.items():
        check_against_spec(folder, feeds[name], spec)
    vset = ValidationSet(kind, str(folder), feeds)
    vset.sha256 = hash_path(folder)
    return vset


def _random_set(info: ModelInfo, n: int, sequence_length: int, seed: int) -> ValidationSet:
    if media.is_image_model(info) or media.is_audio_model(info):
        make = media.random_image_feeds if media.is_image_model(info) else media.random_audio_feeds
        feeds, origin = make(info, n, seed)
        return ValidationSet("random", origin, feeds)
    if not info.hf_dir:
        raise DataError(
            "no validation data given and the model carries no tokenizer to generate inputs",
            "pass --data inputs.npz (one array per model input) or a .conll/.txt file",
        )
    tokenizer = _tokenizer(info)
    rng = np.random.default_rng(seed)
    length = min(sequence_length, 32)
    vocab = len(tokenizer)
    low = max(tokenizer.all_special_ids, default=-1) + 1  # ordinary tokens follow the special ones
    low = low if low < vocab else 0
    ids = rng.integers(low, vocab, size=(n, length), dtype=np.int64)
    feeds = {}
    for name in info.input_names:
        if name == "input_ids":
            feeds[name] = ids
        elif name == "attention_mask":
            feeds[name] = np.ones_like(ids)
        else:
            feeds[name] = np.zeros_like(ids)
    origin = f"{n} random token sequences of {length} tokens (seed {seed})"
    return ValidationSet("random", origin, feeds, _pad_values(tokenizer, info.input_names))
