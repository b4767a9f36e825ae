"""Paddle scan: programs holding a save op are refused, paddle.jit.save programs pass.

Paddle is never imported in this process (a TF-using module may share it); fixtures are built, and
the legacy .pdmodel scans (which parse with Paddle's framework_pb2) run, in child processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hostile_models import build_in_child
from optkit.errors import UnsafeModelError
from optkit.scan import scan_source

pytest.importorskip("paddle")

SRC = str(Path(__file__).resolve().parents[3] / "src")


def _scan_in_child(path: Path) -> dict:
    code = (
        f"import json, sys; sys.path.insert(0, {SRC!r})\nfrom pathlib import Path\n"
        "from optkit.errors import UnsafeModelError\nfrom optkit.scan import scan_source\n"
        f"try:\n    r = scan_source(Path({str(path)!r}), 'paddle'); print(json.dumps({{'passed': r.passed}}))\n"
        "except UnsafeModelError as e:\n    print(json.dumps({'error': str(e), 'exit': e.exit_code}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    out = {}
    for name in ("paddle_pdmodel", "paddle_pdmodel_with_save", "paddle_pir", "paddle_pir_with_save"):
        folder = tmp_path_factory.mktemp(name)
        out[name] = build_in_child(name, folder)
    return out


def test_legacy_pdmodel_with_save_op_is_refused(programs):
    result = _scan_in_child(programs["paddle_pdmodel_with_save"])
    assert "paddle-op 'save'" in result["error"] and "hostile.pdmodel" in result["error"]
    assert "--trust-model-code" in result["error"] and result["exit"] == 2


def test_legacy_pdmodel_from_jit_save_passes(programs):
    assert _scan_in_child(programs["paddle_pdmodel"]) == {"passed": True}


def test_pir_json_with_save_op_is_refused(programs):
    with pytest.raises(UnsafeModelError, match=r"'save_combine' in .*hostile\.json"):
        scan_source(programs["paddle_pir_with_save"], "paddle")


def test_pir_json_from_jit_save_passes(programs):
    report = scan_source(programs["paddle_pir"], "paddle")
    assert report.passed and report.checked == [str(programs["paddle_pir"])]


def test_pir_folder_and_trust(programs):
    folder = programs["paddle_pir_with_save"].parent
    with pytest.raises(UnsafeModelError):
        scan_source(folder, "paddle")
    assert scan_source(folder, "paddle", trust_model_code=True).skipped
