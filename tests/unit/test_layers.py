"""The import-linter contracts in pyproject.toml: layers top to bottom, no circle anywhere.

Runs the real contracts (``lint-imports``) on the source tree, so that a new upward or circular
import, lazy ones inside functions included, fails ``python -m pytest``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
)


def _lint(src: Path, config: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with ``config`` on the optkit package found in ``src``."""
    pytest.importorskip("importlinter")
    return subprocess.run(
        [sys.executable, "-c", LINT],
        cwd=config.parent,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def test_layers_and_no_circles_hold():
    run = _lint(ROOT / "src", ROOT / "pyproject.toml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "layers KEPT" in run.stdout
    assert "no circles between sibling modules KEPT" in run.stdout


def test_a_lazy_upward_import_breaks_the_contract(tmp_path):
    """A copy of the tree with search/ importing passes/ inside a function (a circle, since passes
    import search) must fail: the contract is not vacuous."""
    import shutil

    shutil.copytree(
        ROOT / "src" / "optkit", tmp_path / "src" / "optkit", ignore=shutil.ignore_patterns("__pycache__", "*.yaml")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "src" / "optkit" / "search" / "ort_quantize.py", "a") as f:
        f.write("\n\ndef _upward():\n    from optkit.passes import quantize_dynamic\n")
    run = _lint(tmp_path / "src", tmp_path / "pyproject.toml")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "optkit.search is not allowed to import optkit.passes" in run.stdout
