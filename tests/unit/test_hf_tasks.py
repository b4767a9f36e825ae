"""Hugging Face folders of every task head optkit validates (image and audio classifiers, masked LM,
question answering, DistilBERT), converted end to end by the CLI; heads it does not validate are
refused with exit 2; image and audio folders as validation data, hostile ones included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests import hf_task_models as models

from optkit.errors import DataError, SourceModelError
from optkit.formats.hf_config import transformer_shape
from optkit.passes.fuse import ort_model_type
from optkit.sources import torch_source
from optkit.sources.hf_tasks import detect_task
from optkit.validation.data import load_validation_set

pytest.importorskip("transformers")

FAST = [
    "--batch-sizes",
    "1",
    "--sequence-lengths",
    "16",
    "--set",
    "benchmark.iterations=3",
    "--set",
    "benchmark.warmup=1",
    "--set",
    "benchmark.gates=[]",
    "--set",
    "validation.max_samples=6",
    "--json",
]


@pytest.fixture(scope="session")
def hf(tmp_path_factory) -> dict[str, Path]:
    """Tiny folders of each head, with images, WAV files and text to validate on."""
    root = tmp_path_factory.mktemp("hf-tasks")
    return {
        "vit": models.save_vit(root / "vit"),
        "wav2vec2": models.save_wav2vec2(root / "wav2vec2"),
        "mlm": models.save_text_model(root / "mlm", "BertForMaskedLM"),
        "qa": models.save_text_model(root / "qa", "BertForQuestionAnswering"),
        "distilbert": models.save_text_model(root / "distilbert", "DistilBertForSequenceClassification", "distilbert"),
        "multiple-choice": models.save_text_model(root / "mc", "BertForMultipleChoice"),
        "causal-lm": models.save_text_model(root / "clm", "BertLMHeadModel"),
        "images": models.write_images(root / "images", 6),
        "wavs": models.write_wavs(root / "wavs", 4),
        "text": models.write_text(root / "text.txt", 6),
    }


def convert(source: Path, recipe: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """``optkit convert`` in a subprocess (what users run)."""
    args = [sys.executable, "-m", "optkit.cli.app", "convert", str(source), "--recipe", recipe, "-o", str(out)]
    return subprocess.run(
        [*args, *FAST, *extra], capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"}
    )


def approved(result: subprocess.CompletedProcess, out: Path) -> dict:
    """The manifest of an approved run, after checking exit 0."""
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["approved"] is True
    return manifest


def graph_io(model: Path) -> tuple[list[str], list[str]]:
    """Input and output names of an ONNX file."""
    import onnx

    graph = onnx.load(str(model)).graph
    return [i.name for i in graph.input], [o.name for o in graph.output]


def fuse_details(manifest: dict) -> dict:
    return next(s for s in manifest["steps"] if s["name"] == "fuse")["details"]


def test_vit_image_folder_vision_int8(hf, tmp_path):
    out = tmp_path / "vit"
    manifest = approved(convert(hf["vit"], "vision-int8", out, "--data", str(hf["images"])), out)
    assert manifest["source"]["task"] == "image-classification"
    assert manifest["data"]["kind"] == "images" and manifest["data"]["samples"] == 6
    assert graph_io(out / "model.onnx") == (["pixel_values"], ["logits"])
    details = fuse_details(manifest)
    assert details["model_type"] == "vit" and details["num_heads"] == 2 and details["hidden_size"] == 32
    assert details["attention_fusions"] == 2  # its Mul-scaled unmasked attention read as ORT's Div form
    assert manifest["accuracy"]["metrics"]["label_agreement"] >= 0.98
    assert manifest["search"], "the accuracy-aware int8 search ran"


def test_vit_npz_of_pixel_values(hf, tmp_path):
    data = tmp_path / "pixels.npz"
    np.savez(data, pixel_values=np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32))
    out = tmp_path / "vit"
    manifest = approved(convert(hf["vit"], "fp32", out, "--data", str(data)), out)
    assert manifest["data"]["kind"] == "npz" and manifest["evidence"] == "real-data"


def test_vit_without_data_uses_random_images(hf, tmp_path):
    out = tmp_path / "vit"
    manifest = approved(convert(hf["vit"], "fp32", out), out)
    assert manifest["evidence"] == "random-inputs" and "3x32x32" in manifest["data"]["origin"]


def test_wav2vec2_wav_folder_audio_fp32(hf, tmp_path):
    out = tmp_path / "audio"
    manifest = approved(convert(hf["wav2vec2"], "audio-fp32", out, "--data", str(hf["wavs"])), out)
    assert manifest["source"]["task"] == "audio-classification" and manifest["data"]["kind"] == "audio"
    assert graph_io(out / "model.onnx") == (["input_values"], ["logits"])
    assert manifest["accuracy"]["metrics"]["label_agreement"] == 1.0


def test_masked_lm_keeps_its_head(hf, tmp_path):
    out = tmp_path / "mlm"
    manifest = approved(convert(hf["mlm"], "fp32", out, "--data", str(hf["text"])), out)
    assert manifest["source"]["task"] == "fill-mask"
    assert graph_io(out / "model.onnx")[1] == ["logits"]
    (logits,) = manifest["accuracy"]["outputs"]
    assert logits["name"] == "logits" and logits["shape"][-1] == len(models.WORDS) + 5  # the vocabulary, not hidden
    assert manifest["accuracy"]["metrics"]["top1_agreement"] == 1.0


def test_question_answering_has_start_and_end_logits(hf, tmp_path):
    out = tmp_path / "qa"
    manifest = approved(convert(hf["qa"], "fp32", out, "--data", str(hf["text"])), out)
    assert manifest["source"]["task"] == "question-answering"
    assert graph_io(out / "model.onnx")[1] == ["start_logits", "end_logits"]
    assert [o["name"] for o in manifest["accuracy"]["outputs"]] == ["start_logits", "end_logits"]


def test_distilbert_gets_attention_fusions(hf, tmp_path):
    """DistilBERT's config says n_heads / dim: read per architecture, ORT fuses its 2 attention layers."""
    out = tmp_path / "distil"
    manifest = approved(convert(hf["distilbert"], "fp32", out, "--data", str(hf["text"])), out)
    details = fuse_details(manifest)
    assert details["num_heads"] == 2 and details["hidden_size"] == 32
    assert details["attention_fusions"] == 2
    assert graph_io(out / "model.onnx")[0] == ["input_ids", "attention_mask"]  # no token_type_ids


def test_funnel_length_baked_by_its_code_is_exit_2_naming_it(tmp_path):
    """Funnel's modeling code turns the sequence length into Python ints (torch.export specializes it
    too): never exit 3 inside ONNX Runtime, never approved at the one length it was traced at."""
    folder = models.save_funnel(tmp_path / "funnel")
    text = models.write_text(tmp_path / "text.txt", 8)
    result = convert(folder, "fp32", tmp_path / "o", "--data", str(text))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "the export works only at the shape it was traced with (sequence 14 baked into the graph)" in result.stderr
    assert "Traceback" not in result.stderr and "[E:onnxruntime" not in result.stderr  # only optkit's message
    assert not (tmp_path / "o").exists()


def test_modernbert_is_approved_against_its_sdpa_reference(tmp_path):
    """Exported with eager attention, validated against transformers' default (SDPA) at the data's
    lengths and at two others; its 0 Attention fusions are a warning that names why."""
    folder = models.save_modernbert(tmp_path / "modernbert")
    text = models.write_text(tmp_path / "text.txt", 8)
    out = tmp_path / "o"
    manifest = approved(convert(folder, "fp32", out, "--data", str(text)), out)
    assert manifest["source"]["task"] == "sequence-classification"
    assert manifest["accuracy"]["metrics"]["max_abs_error"] < 1e-4
    details = fuse_details(manifest)
    assert details["num_heads"] == 2 and details["hidden_size"] == 32 and details["attention_fusions"] == 0
    assert any("packed Wqkv" in w for w in manifest["warnings"])


@pytest.mark.parametrize("head, arch", [("multiple-choice", "BertForMultipleChoice"), ("causal-lm", "BertLMHeadModel")])
def test_unvalidated_head_is_exit_2_naming_it(hf, tmp_path, head, arch):
    result = convert(hf[head], "fp32", tmp_path / "o", "--data", str(hf["text"]))
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{arch} has a {head} head" in result.stderr and "Traceback" not in result.stderr
    if head == "multiple-choice":  # why, and what to do instead
        assert "batch x choices x sequence" in result.stderr and "--task multiple-choice" in result.stderr


@pytest.mark.parametrize("model_type", ["convnext", "resnet", "swin", "deit"])
def test_other_image_classifiers_load_with_their_head(tmp_path, model_type):
    source = torch_source.load(models.save_image_classifier(tmp_path / model_type, model_type), tmp_path / "w")
    assert source.info.task == "image-classification" and source.info.output_names == ["logits"]
    assert source.info.input_specs["pixel_values"].shape == ("batch", 3, 32, 32)
    pixels = np.zeros((2, 3, 32, 32), np.float32)
    out = source.runner(1).infer({"pixel_values": pixels})
    assert out["logits"].shape == (2, 2)
    if model_type == "deit":  # saved WithTeacher: loaded as that class, not the plain one Auto picks
        assert type(source.module.model).__name__ == "DeiTForImageClassificationWithTeacher"


def test_cnn_classifier_converts_and_skips_fusion(tmp_path):
    folder = models.save_image_classifier(tmp_path / "resnet", "resnet")
    out = tmp_path / "o"
    manifest = approved(convert(folder, "fp32", out), out)
    fuse = next(s for s in manifest["steps"] if s["name"] == "fuse")
    assert "without attention heads" in (fuse.get("skipped") or json.dumps(fuse))


def test_heads_and_tasks_from_config():
    assert detect_task({"architectures": ["BertForMaskedLM"], "model_type": "bert"}, "m").task == "fill-mask"
    assert detect_task({"model_type": "vit"}, "m").modality == "image"
    assert detect_task({"architectures": ["HubertForSequenceClassification"]}, "m").task == "audio-classification"
    with pytest.raises(SourceModelError, match="ctc head"):
        detect_task({"architectures": ["Wav2Vec2ForCTC"]}, "m")
    with pytest.raises(SourceModelError, match="not a transformers class"):
        detect_task({"architectures": ["MyOwnThing"]}, "m")
    with pytest.raises(SourceModelError, match="masked-image-modeling head that transformers' Auto"):
        detect_task({"architectures": ["BeitForMaskedImageModeling"], "model_type": "beit"}, "m")
    with pytest.raises(SourceModelError, match="not a transformers class"):
        detect_task({"architectures": ["NotARealClassForQuestionAnswering"]}, "m")  # hostile: no such class
    remote = detect_task({"architectures": ["MyModelForQuestionAnswering"], "auto_map": {"x": "y"}}, "m")
    assert remote.class_name is None and remote.outputs == ("start_logits", "end_logits")


def test_transformer_shape_per_architecture():
    assert transformer_shape({"model_type": "distilbert", "n_heads": 12, "dim": 768}) == (12, 768)
    assert transformer_shape({"model_type": "gpt2", "n_head": 12, "n_embd": 768}) == (12, 768)
    assert transformer_shape({"model_type": "t5", "num_heads": 8, "d_model": 512}) == (8, 512)
    assert transformer_shape({"model_type": "vit", "num_attention_heads": 3, "hidden_size": 192}) == (3, 192)
    assert transformer_shape({"model_type": "funnel", "n_head": 12, "d_model": 768}) == (12, 768)
    assert transformer_shape({"model_type": "swin", "num_heads": [3, 6], "hidden_size": 768}) == (0, 0)
    assert transformer_shape({"model_type": "clip", "text_config": {"num_attention_heads": 8, "hidden_size": 512}}) == (
        8,
        512,
    )
    assert transformer_shape({"num_attention_heads": True, "hidden_size": "768"}) == (0, 0)  # hostile values


def test_ort_model_types():
    types = {"bert", "vit", "swin", "gpt2"}
    assert ort_model_type("deit", 3, types) == "vit" and ort_model_type("distilbert", 12, types) == "bert"
    assert ort_model_type("swin", 0, types) == "swin"
    assert ort_model_type("wav2vec2", 12, types) == "bert"
    assert ort_model_type("resnet", 0, types) is None


@pytest.fixture(scope="module")
def vit_info(hf, tmp_path_factory):
    return torch_source.load(hf["vit"], tmp_path_factory.mktemp("w")).info


@pytest.fixture(scope="module")
def audio_info(hf, tmp_path_factory):
    return torch_source.load(hf["wav2vec2"], tmp_path_factory.mktemp("w")).info


def test_image_folder_reads_pngs(vit_info, hf):
    vset = load_validation_set(str(hf["images"]), vit_info, 4, 128)
    assert vset.feeds["pixel_values"].shape == (4, 3, 32, 32) and vset.feeds["pixel_values"].dtype == np.float32
    assert vset.kind == "images" and vset.sha256


def test_damaged_image_is_data_error(vit_info, hf, tmp_path):
    folder = models.write_images(tmp_path / "imgs", 2)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="cannot read image .*broken.png"):
        load_validation_set(str(folder), vit_info, 10, 128)


def test_decompression_bomb_is_refused(vit_info, tmp_path, monkeypatch):
    from PIL import Image

    folder = models.write_images(tmp_path / "imgs", 1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # every test image is above it
    with pytest.raises(DataError, match="DecompressionBomb"):
        load_validation_set(str(folder), vit_info, 10, 128)


def test_empty_folder_and_text_model_folder_are_data_errors(vit_info, hf, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no"):
        load_validation_set(str(tmp_path / "empty"), vit_info, 10, 128)
    text_info = torch_source.load(hf["mlm"], tmp_path / "w").info
    with pytest.raises(DataError, match="not images or audio"):
        load_validation_set(str(hf["images"]), text_info, 10, 128)


def test_wav_folder_reads_clips(audio_info, hf):
    vset = load_validation_set(str(hf["wavs"]), audio_info, 3, 128)
    assert vset.feeds["input_values"].shape == (3, models.SAMPLES) and vset.kind == "audio"


def test_wrong_sampling_rate_and_garbage_wav_are_data_errors(audio_info, tmp_path):
    folder = models.write_wavs(tmp_path / "8k", 1, rate=8000)
    with pytest.raises(DataError, match="8000 Hz.*16000 Hz"):
        load_validation_set(str(folder), audio_info, 10, 128)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "a.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(DataError, match="cannot read sound file"):
        load_validation_set(str(garbage), audio_info, 10, 128)


def test_random_audio_goes_through_the_feature_extractor(audio_info):
    vset = load_validation_set(None, audio_info, 2, 128)
    assert not vset.is_real and vset.feeds["input_values"].shape == (2, 16000)
    # Wav2Vec2FeatureExtractor normalizes each clip to zero mean, unit variance
    assert abs(float(vset.feeds["input_values"][0].std()) - 1.0) < 0.01


def test_fifo_in_an_image_folder_is_refused_unopened(vit_info, tmp_path):
    folder = models.write_images(tmp_path / "imgs", 1)
    os.mkfifo(folder / "zz.png")  # opening it would block forever
    with pytest.raises(DataError, match="FIFO"):
        load_validation_set(str(folder), vit_info, 10, 128)
