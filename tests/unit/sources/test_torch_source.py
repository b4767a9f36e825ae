"""PyTorch sources: format sniffing, embedded metadata, pickle refusal, corrupt files."""

from __future__ import annotations

import pytest

from optkit.errors import SourceModelError
from optkit.sources import torch_source
from optkit.sources.torch_format import read_embedded, sniff


def test_sniff_formats(tiny):
    assert sniff(tiny["pt"]) == "torchscript"
    assert sniff(tiny["pt2"]) == "torch.export"
    assert sniff(tiny["hf"]) == "hf"
    assert sniff(tiny["pickle"]) == "pickle"
    assert sniff(tiny["state_dict"]) == "pickle"


def test_embedded_metadata_is_read_without_loading(tiny):
    embedded = read_embedded(tiny["pt"])
    assert "model_info.json" in embedded and "hf/config.json" in embedded


def test_torchscript_source_info(tiny, tmp_path):
    source = torch_source.load(tiny["pt"], tmp_path)
    assert source.kind == "torchscript"
    assert source.info.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    assert source.info.task == "token-classification"
    assert source.info.labels[0] == "O" and source.info.num_heads == 2 and source.info.hidden_size == 32


def test_pt2_and_hf_sources(tiny, tmp_path):
    assert torch_source.load(tiny["pt2"], tmp_path).kind == "torch.export"
    hf = torch_source.load(tiny["hf"], tmp_path)
    assert hf.kind == "hf" and hf.info.task == "token-classification" and hf.info.output_names == ["logits"]


def test_pickle_refused_without_trust(tiny, tmp_path):
    with pytest.raises(SourceModelError) as err:
        torch_source.load(tiny["pickle"], tmp_path)
    assert "arbitrary code" in err.value.message and "--trust-pickle" in err.value.hint


def test_pickle_with_trust_loads_module(tiny, tmp_path):
    source = torch_source.load(tiny["pickle"], tmp_path, trust_pickle=True)
    assert source.kind == "pickle" and source.info.input_names[0] == "input_ids"


def test_state_dict_is_refused_even_with_trust(tiny, tmp_path):
    with pytest.raises(SourceModelError, match="state dict"):
        torch_source.load(tiny["state_dict"], tmp_path, trust_pickle=True)


def test_truncated_torchscript_is_clear_error(tiny, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(tiny["pt"].read_bytes()[:5000])
    with pytest.raises(SourceModelError, match="truncated or corrupt"):
        torch_source.load(broken, tmp_path)


def test_not_a_torch_file(tmp_path):
    fake = tmp_path / "model.pt"
    fake.write_text("hello")
    with pytest.raises(SourceModelError, match="not a PyTorch file"):
        sniff(fake)


def test_folder_without_config(tmp_path):
    with pytest.raises(SourceModelError, match="config.json"):
        sniff(tmp_path)


class _Plant:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_malicious_pickle_never_runs_without_trust(tmp_path, writer):
    import pickle

    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(_Plant(marker), protocol=2))
    else:
        torch.save(_Plant(marker), str(path))
    with pytest.raises(SourceModelError):
        torch_source.load(path, tmp_path)
    assert not marker.exists(), "the pickle was executed"


@pytest.mark.parametrize("keep", [0.3, 0.95])
def test_truncated_torch_export_program_is_clear_error(tiny, tmp_path, keep):
    data = tiny["pt2"].read_bytes()
    broken = tmp_path / "broken.pt2"
    broken.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(SourceModelError, match="truncated or corrupt"):
        torch_source.load(broken, tmp_path)


def test_torchscript_named_onnx_loads_as_torchscript(tiny, tmp_path):
    import shutil

    from optkit.registry import detect_framework, resolve

    lying = tmp_path / "model.onnx"
    shutil.copy(tiny["pt"], lying)
    framework = detect_framework(lying)
    source = resolve(framework.loader)(lying, tmp_path)
    assert framework.name == "torch" and source.kind == "torchscript"


def _damage(src, dst, member, how):
    """Rewrite the zip ``src`` as ``dst`` with one entry's content damaged (CRCs stay valid)."""
    import zipfile

    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            if info.filename.endswith(member):
                data = data[: len(data) // 2] if how == "truncated" else b"\xff\xfegarbage" * 9
            new.writestr(info.filename, data)


@pytest.mark.parametrize("member, how", [("data/weights/weight_0", "truncated"), ("models/model.json", "garbage")])
def test_damaged_pt2_is_one_line_without_torchs_traceback(tiny, tmp_path, member, how):
    """torch.export.load logs the whole traceback of a bad weight file on the 'torch.export' logger:
    the CLI keeps it off stderr and puts its cause in the one line (the traceback with OPTKIT_DEBUG=1)."""
    import os
    import subprocess
    import sys

    broken = tmp_path / "model.pt2"
    _damage(tiny["pt2"], broken, member, how)
    base = [
        sys.executable,
        "-m",
        "optkit.cli.app",
        "convert",
        str(broken),
        "--recipe",
        "fp32",
        "--data",
        str(tiny["conll"]),
        "-o",
        str(tmp_path / "o"),
    ]
    quiet = subprocess.run(
        base, capture_output=True, text=True, timeout=300, env={**os.environ, "OPTKIT_DEBUG": "0", "COLUMNS": "200"}
    )
    lines = quiet.stderr.strip().splitlines()
    assert quiet.returncode == 2, quiet.stderr
    assert lines[-1].startswith(f"source model error: cannot load {broken} as torch.export: "), lines[-1]
    assert "Traceback" not in quiet.stderr and not any("torch/export" in line for line in lines), quiet.stderr
    assert [line for line in lines if not line.startswith(("optkit convert", "…"))] == lines[-1:]
    if how == "truncated":
        assert "RuntimeError: setStorage" in lines[-1], "the logged cause, not 'check the warnings above'"
        loud = subprocess.run(
            base, capture_output=True, text=True, timeout=300, env={**os.environ, "OPTKIT_DEBUG": "1", "COLUMNS": "200"}
        )
        assert loud.returncode == 2 and "Traceback" in loud.stderr
