"""Pickle (fickling), Hugging Face remote code, ONNX domains, and the CLI exit code."""

from __future__ import annotations

import json

import pytest

from hostile_models import hf_auto_map, hf_benign, hf_custom_py, joblib_benign, joblib_os_system, pickle_os_system
from optkit.errors import UnsafeModelError
from optkit.scan import remote_code_files, scan_source


def test_pickle_calling_os_system_is_refused(tmp_path):
    path = pickle_os_system(tmp_path)
    with pytest.raises(UnsafeModelError, match=r"'from (posix|os) import system' in .*os_system\.pkl"):
        scan_source(path, "sklearn")
    assert not (tmp_path / "pwned").exists()  # nothing was unpickled


def test_os_system_after_a_joblib_array_buffer_is_refused(tmp_path):
    with pytest.raises(UnsafeModelError, match="import system"):
        scan_source(joblib_os_system(tmp_path), "sklearn")


def test_benign_joblib_passes(tmp_path):
    report = scan_source(joblib_benign(tmp_path), "sklearn")
    assert report.passed and report.to_dict()["scanners"]["fickling"]


def test_torch_archives_pass_and_a_hostile_torch_pickle_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()), tmp_path / "module.pt")
    report = scan_source(tmp_path / "module.pt", "torch")
    assert report.passed and report.checked == [f"{tmp_path / 'module.pt'}!module/data.pkl"]
    torch.save({"payload": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeModelError, match=r"evil\.pt!evil/data\.pkl"):
        scan_source(tmp_path / "evil.pt", "torch")


class _Evil:
    """Pickles to ``os.system`` (inside a torch.save archive); never unpickled here."""

    def __reduce__(self):
        import os

        return os.system, ("true",)


def test_hf_remote_code_is_refused_unless_trusted(tmp_path):
    auto, custom = hf_auto_map(tmp_path), hf_custom_py(tmp_path)
    assert remote_code_files(auto) == [str(auto / "config.json")]
    assert remote_code_files(custom) == [str(custom / "modeling_evil.py")]
    for folder, name in ((auto, "config.json"), (custom, "modeling_evil.py")):
        with pytest.raises(UnsafeModelError, match=name) as info:
            scan_source(folder, "torch")
        assert "--trust-remote-code" in info.value.hint
    report = scan_source(auto, "torch", trust_remote_code=True)
    assert report.passed and "remote code trusted" in report.notes[0]


def test_hf_benign_folder_and_tokenizer_auto_map(tmp_path):
    folder = hf_benign(tmp_path)
    assert remote_code_files(folder) == [] and scan_source(folder, "torch").passed
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["t.T", None]}}))
    assert remote_code_files(folder) == [str(folder / "tokenizer_config.json")]


def test_onnx_domains_recorded(tmp_path):
    import onnx
    from onnx import helper

    node = helper.make_node("MyOp", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, tmp_path / "m.onnx")
    report = scan_source(tmp_path / "m.onnx", "onnx")
    assert report.passed and any("custom op domains" in n and "com.example" in n for n in report.notes)


def test_exit_code_2_through_the_cli_guard(tmp_path, capsys):
    from optkit.cli.errors import guarded

    path = pickle_os_system(tmp_path)
    with pytest.raises(SystemExit) as info:
        guarded(lambda: scan_source(path, "sklearn"))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unsafe model:") and "os_system.pkl" in err and "--trust-model-code" in err
    assert len(err.splitlines()) == 1


def test_torchscript_archive_is_not_scanned_as_pickle(tmp_path):
    """TorchScript's pickles (torch.jit._pickle globals) are read by torch's restricted unpickler."""
    torch = pytest.importorskip("torch")
    scripted = torch.jit.trace(torch.nn.Linear(2, 2), torch.ones(1, 2))
    torch.jit.save(scripted, tmp_path / "m.pt")
    report = scan_source(tmp_path / "m.pt", "torch")
    assert report.passed and "torchscript archive" in report.notes[0] and report.checked == []
