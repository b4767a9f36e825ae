"""Tiny random-weight Hugging Face folders of each task head (hidden size 32, 2 layers), saved with
``save_pretrained`` together with their tokenizer, image processor or feature extractor; and the
data files their tests validate on (images, WAV files, ``.npz``). Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tests.tiny_models import WORDS

LAYERS = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
#: audio clips: 1,600 samples at 16 kHz (0.1 s)
SAMPLES, RATE = 1600, 16000


def _tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)


def save_text_model(folder: Path, architecture: str, model_type: str = "bert", seed: int = 0) -> Path:
    """A tiny text model of class ``architecture`` (e.g. ``BertForMaskedLM``, ``DistilBertForQuestionAnswering``)
    with a word-level tokenizer, saved in ``folder``."""
    import transformers

    torch.manual_seed(seed)
    tokenizer = _tokenizer(folder)
    vocab = len(WORDS) + 5
    if model_type == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=40
        )
    else:
        config = transformers.BertConfig(vocab_size=vocab, hidden_size=32, max_position_embeddings=40, **LAYERS)
    config.architectures = [architecture]
    model = getattr(transformers, architecture)(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_funnel(folder: Path, seed: int = 0) -> Path:
    """A tiny Funnel Transformer base model (``FunnelModel``: 2 blocks of 1 layer, 1 decoder layer),
    whose modeling code fixes the sequence length when traced, with a word-level tokenizer."""
    import transformers

    torch.manual_seed(seed)
    tokenizer = _tokenizer(folder)
    config = transformers.FunnelConfig(
        vocab_size=len(WORDS) + 5,
        block_sizes=[1, 1],
        num_decoder_layers=1,
        d_model=32,
        n_head=2,
        d_head=16,
        d_inner=64,
        max_position_embeddings=64,
        architectures=["FunnelModel"],
    )
    transformers.FunnelModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_modernbert(folder: Path, seed: int = 0) -> Path:
    """A tiny ModernBERT sequence classifier (3 layers, a local attention window of 8 tokens in two
    of them, so the sliding-window mask matters at the test data's lengths) with a word-level tokenizer."""
    import transformers

    torch.manual_seed(seed)
    tokenizer = _tokenizer(folder)
    config = transformers.ModernBertConfig(
        vocab_size=len(WORDS) + 5,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        max_position_embeddings=64,
        local_attention=8,
        global_attn_every_n_layers=3,
        pad_token_id=0,
        cls_token_id=2,
        sep_token_id=3,
        bos_token_id=2,
        eos_token_id=3,
        num_labels=2,
        architectures=["ModernBertForSequenceClassification"],
    )
    transformers.ModernBertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_vit(folder: Path, seed: int = 0) -> Path:
    """A ViT image classifier (32 x 32 RGB images, 8 x 8 patches, 3 classes) with its image processor."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    labels = ["cat", "dog", "bird"]
    config = ViTConfig(
        hidden_size=32,
        image_size=32,
        patch_size=8,
        num_labels=3,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        architectures=["ViTForImageClassification"],
        **LAYERS,
    )
    ViTForImageClassification(config).eval().save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_image_classifier(folder: Path, model_type: str, seed: int = 0) -> Path:
    """A tiny ConvNeXt, ResNet, Swin or DeiT image classifier (32 x 32 images) with an image processor."""
    import transformers

    torch.manual_seed(seed)
    if model_type == "convnext":
        config = transformers.ConvNextConfig(
            hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=2, image_size=32
        )
        arch = "ConvNextForImageClassification"
    elif model_type == "resnet":
        config = transformers.ResNetConfig(
            embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=2
        )
        arch = "ResNetForImageClassification"
    elif model_type == "swin":
        config = transformers.SwinConfig(
            image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4, num_labels=2
        )
        arch = "SwinForImageClassification"
    else:
        config = transformers.DeiTConfig(hidden_size=32, image_size=32, patch_size=8, num_labels=2, **LAYERS)
        arch = "DeiTForImageClassificationWithTeacher"
    config.architectures = [arch]
    getattr(transformers, arch)(config).eval().save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_wav2vec2(folder: Path, seed: int = 0) -> Path:
    """A wav2vec2-style audio classifier (2 labels; 16 kHz) with its feature extractor."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        hidden_size=32,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        num_labels=2,
        architectures=["Wav2Vec2ForSequenceClassification"],
        **LAYERS,
    )
    Wav2Vec2ForSequenceClassification(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=RATE).save_pretrained(folder)
    return folder


def write_images(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` random RGB PNG images of assorted sizes in ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        height, width = int(rng.integers(24, 64)), int(rng.integers(24, 64))
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.png")
    return folder


def write_wavs(folder: Path, n: int, rate: int = RATE, seed: int = 0) -> Path:
    """``n`` mono WAV files of :data:`SAMPLES` samples (tones plus noise) at ``rate`` Hz in ``folder``."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLES) / rate
    for i in range(n):
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.05 * rng.standard_normal(SAMPLES)
        soundfile.write(folder / f"clip{i:03d}.wav", wave.astype(np.float32), rate)
    return folder


def write_text(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` lines of 3 to 12 words of the tiny vocabulary (a ``.txt`` for text models' ``--data``)."""
    rng = np.random.default_rng(seed)
    path.write_text("\n".join(" ".join(rng.choice(WORDS, size=int(rng.integers(3, 13)))) for _ in range(n)) + "\n")
    return path
