"""Validation inputs for image and audio models: a folder of images or sound files, or generated
random pixels / waveforms.

Images are read with Pillow and sound files with soundfile (libsndfile: WAV, FLAC, OGG), then
preprocessed by the model's own image processor or feature extractor, loaded here (optkit's own,
unconfined process) from its JSON file only: ``trust_remote_code=False`` and ``local_files_only``;
a processor that needs its own code is refused, never run. soundfile was picked over
``scipy.io.wavfile``: it reads FLAC and OGG as well as WAV, in every sample format, as float32.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from optkit.errors import DataError, missing_dependency
from optkit.io_spec import ModelInfo
from optkit.paths import require_regular
from optkit.runners.base import Feeds

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg"})
#: longest sound file read (seconds); a longer one is refused before it is read into memory
MAX_AUDIO_SECONDS = 600.0
#: seconds of generated random audio per sample
RANDOM_AUDIO_SECONDS = 1.0


def is_image_model(info: ModelInfo) -> bool:
    """True when the model takes ``pixel_values`` (an image processor's output)."""
    return info.input_names == ["pixel_values"]


def is_audio_model(info: ModelInfo) -> bool:
    """True when the model takes one float waveform or spectrogram input from a feature extractor
    (``input_values`` or ``input_features``)."""
    return len(info.input_names) == 1 and info.input_names[0] in ("input_values", "input_features")


def _processor(info: ModelInfo, kind: str) -> Any:
    """The model's image processor (``kind="image"``) or feature extractor (``"audio"``), from its
    JSON file only.

    Raises:
        DataError: no processor folder, or one that cannot be loaded from its files.
    """
    what = "image processor" if kind == "image" else "feature extractor"
    if not info.hf_dir:
        raise DataError(
            f"the source model carries no {what}, so {kind} files cannot be preprocessed",
            f"pass --data inputs.npz with the array '{info.input_names[0]}'",
        )
    try:
        import transformers
    except ImportError as exc:
        raise missing_dependency("transformers", "torch") from exc
    auto = transformers.AutoImageProcessor if kind == "image" else transformers.AutoFeatureExtractor
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return auto.from_pretrained(info.hf_dir, trust_remote_code=False, local_files_only=True)
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for unusable folders
        raise DataError(
            f"cannot load the model's {what} from its files: {type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0][:200]}",
            f"pass --data inputs.npz with the array '{info.input_names[0]}' (a {what} that needs "
            "its own code is never run in optkit's process)",
        ) from exc


def folder_files(folder: Path, suffixes: frozenset[str], max_samples: int) -> list[Path]:
    """The first ``max_samples`` files of ``folder`` (not its subfolders) whose suffix is one of
    ``suffixes``, sorted by name; each must be a regular file.

    Raises:
        DataError: no such file, or one that is a FIFO, device or socket.
    """
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)[:max_samples]
    if not files:
        raise DataError(
            f"{folder} holds no {'/'.join(sorted(suffixes))} files",
            "pass a folder of images (for an image model) or sound files (for an audio model), or an .npz",
        )
    return [require_regular(p, "validation data", DataError) for p in files]


def image_feeds(folder: Path, info: ModelInfo, max_samples: int) -> Feeds:
    """``{"pixel_values": float32 (N, C, H, W)}`` from the images of ``folder``, preprocessed by the
    model's image processor. Images are converted to RGB (or L for a 1-channel model).

    Raises:
        DataError: an image Pillow cannot read, one above Pillow's decompression-bomb limit
            (``PIL.Image.MAX_IMAGE_PIXELS``), or no image processor.
    """
    from PIL import Image

    processor = _processor(info, "image")
    spec = info.input_specs.get("pixel_values")
    mode = "L" if spec is not None and len(spec.shape) == 4 and spec.shape[1] == 1 else "RGB"
    images = []
    for path in folder_files(folder, IMAGE_SUFFIXES, max_samples):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    images.append(image.convert(mode))
        except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DataError(
                f"cannot read image {path}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}",
                "pass images Pillow reads (PNG, JPEG, ...) of a sane size",
            ) from exc
    pixels = processor(images=images, return_tensors="np")["pixel_values"]
    return {"pixel_values": np.ascontiguousarray(pixels, dtype=np.float32)}


def _rate(extractor: Any) -> int:
    return int(getattr(extractor, "sampling_rate", 16000) or 16000)


def _extract(extractor: Any, waves: list[np.ndarray], name: str) -> Feeds:
    rate = _rate(extractor)
    out = extractor(waves, sampling_rate=rate, padding=True, return_tensors="np")
    return {name: np.ascontiguousarray(out[name], dtype=np.float32)}


def audio_feeds(folder: Path, info: ModelInfo, max_samples: int) -> Feeds:
    """``{input name: float32 array}`` from the sound files of ``folder`` (mixed down to mono),
    preprocessed by the model's feature extractor (padded to the longest file).

    Raises:
        DataError: a file soundfile cannot read, longer than :data:`MAX_AUDIO_SECONDS`, or at a
            sampling rate other than the feature extractor's (optkit does not resample).
    """
    try:
        import soundfile
    except ImportError as exc:
        raise missing_dependency("soundfile", "torch") from exc
    extractor = _processor(info, "audio")
    rate = _rate(extractor)
    waves = []
    for path in folder_files(folder, AUDIO_SUFFIXES, max_samples):
        try:
            meta = soundfile.info(str(path))
            if meta.samplerate != rate:
                raise DataError(
                    f"{path} is sampled at {meta.samplerate} Hz, the model's feature extractor expects {rate} Hz",
                    f"resample the files to {rate} Hz (e.g. with sox or librosa) first",
                )
            if meta.frames > MAX_AUDIO_SECONDS * rate:
                raise DataError(
                    f"{path} is {meta.frames / rate:.0f} s long, over the {MAX_AUDIO_SECONDS:.0f} s optkit reads",
                    "cut the recordings into clips",
                )
            data, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, OSError, ValueError, TypeError) as exc:  # LibsndfileError is a RuntimeError
            raise DataError(
                f"cannot read sound file {path}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}",
                "pass WAV, FLAC or OGG files",
            ) from exc
        waves.append(data.mean(axis=1))
    return _extract(extractor, waves, info.input_names[0])


def random_image_feeds(info: ModelInfo, n: int, seed: int) -> tuple[Feeds, str]:
    """``n`` standard-normal float32 images at the model's ``(C, H, W)`` (normalized pixels have
    about that spread), and a description for the report.

    Raises:
        DataError: the model's input shape has a dynamic axis besides the batch.
    """
    spec = info.input_specs.get("pixel_values")
    dims = spec.shape[1:] if spec is not None else ()
    if len(dims) != 3 or not all(isinstance(d, int) for d in dims):
        raise DataError(
            "no validation data given and the image model's input size is not known",
            "pass --data with a folder of images or an .npz of pixel_values",
        )
    shape = (n, *(int(d) for d in dims))
    pixels = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    return {"pixel_values": pixels}, f"{n} random images of {dims[0]}x{dims[1]}x{dims[2]} (seed {seed})"


def random_audio_feeds(info: ModelInfo, n: int, seed: int) -> tuple[Feeds, str]:
    """``n`` clips of :data:`RANDOM_AUDIO_SECONDS` of Gaussian noise (standard deviation 0.1) at the
    feature extractor's sampling rate, preprocessed by it, and a description for the report.

    Raises:
        DataError: the feature extractor cannot be loaded from its files.
    """
    extractor = _processor(info, "audio")
    rate = _rate(extractor)
    rng = np.random.default_rng(seed)
    length = int(RANDOM_AUDIO_SECONDS * rate)
    waves = [(0.1 * rng.standard_normal(length)).astype(np.float32) for _ in range(n)]
    origin = f"{n} random noise clips of {RANDOM_AUDIO_SECONDS:g} s at {rate} Hz (seed {seed})"
    return _extract(extractor, waves, info.input_names[0]), origin
