"""The real CLI: exit codes, one-line errors, --json, recipes commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from optkit.cli.app import app

runner = CliRunner()
FAST_FLAGS = [
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
]


def optkit(*args, env=None):
    """Run the installed console script in a subprocess (what users and CI run)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "optkit.cli.app", *args], capture_output=True, text=True, env=full_env, timeout=600
    )


def test_recipes_list_and_show():
    listed = runner.invoke(app, ["recipes", "list"])
    assert listed.exit_code == 0 and "ner-int8" in listed.output and "fp16" in listed.output
    shown = runner.invoke(app, ["recipes", "show", "ner-fp16"])
    assert shown.exit_code == 0 and "keep_io_types: true" in shown.output
    schema = runner.invoke(app, ["recipes", "schema"])
    assert schema.exit_code == 0 and json.loads(schema.output)["title"] == "Recipe"


def test_unknown_recipe_exit_2_one_line():
    result = optkit("recipes", "show", "ner-int4")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "ner-int8" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_source_exit_2(tmp_path):
    result = optkit("convert", str(tmp_path / "nope.pt"), "--recipe", "fp32")
    assert result.returncode == 2 and "not found" in result.stderr and "Traceback" not in result.stderr


def test_recipe_typo_exit_2(tiny, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\npasses:\n  - type: fuse\n    num_head: 2\n")
    result = runner.invoke(app, ["convert", str(tiny["pt"]), "--recipe", str(recipe), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "r.yaml line 4" in result.output and "num_heads" in result.output


def test_corrupt_pt_exit_2(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"PK\x03\x04garbage")
    result = optkit("convert", str(bad), "-o", str(tmp_path / "o"))
    assert result.returncode == 2 and "corrupt" in result.stderr
    assert not (tmp_path / "o").exists()


def test_pickle_without_trust_exit_2(tiny, tmp_path):
    result = runner.invoke(app, ["convert", str(tiny["pickle"]), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--trust-pickle" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_bad_flag_values_exit_2(tiny, tmp_path):
    result = runner.invoke(app, ["convert", str(tiny["pt"]), "--batch-sizes", "1,x", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--batch-sizes" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_internal_error_exit_3_traceback_only_with_debug(tiny, tmp_path, monkeypatch):
    import optkit.pipeline

    def boom(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(optkit.pipeline, "run_request", boom)  # what the CLI calls
    quiet = runner.invoke(app, ["convert", str(tiny["pt"])])
    assert quiet.exit_code == 3 and "internal error: ZeroDivisionError: boom" in quiet.output
    assert "Traceback" not in quiet.output
    monkeypatch.setenv("OPTKIT_DEBUG", "1")
    loud = runner.invoke(app, ["convert", str(tiny["pt"])])
    assert loud.exit_code == 3 and "Traceback" in loud.output


def test_convert_json_and_exit_codes(tiny, tmp_path):
    ok = optkit(
        "convert",
        str(tiny["pt"]),
        "--recipe",
        "ner-int8",
        "--data",
        str(tiny["conll"]),
        "-o",
        str(tmp_path / "ok"),
        "--json",
        *FAST_FLAGS,
    )
    assert ok.returncode == 0, ok.stderr
    payload = json.loads(ok.stdout)
    assert payload["approved"] is True and payload["output_dir"] == str(tmp_path / "ok")
    assert "PASSED" in ok.stderr
    again = optkit("convert", str(tiny["pt"]), "--recipe", "ner-int8", "-o", str(tmp_path / "ok"))
    assert again.returncode == 2 and "--overwrite" in again.stderr
    failed = optkit(
        "convert",
        str(tiny["pt"]),
        "--recipe",
        "ner-int8",
        "--data",
        str(tiny["conll"]),
        "-o",
        str(tmp_path / "bad"),
        "--json",
        *FAST_FLAGS,
        "--set",
        "validation.gates=[{metric: max_abs_error, max: 0}]",
    )
    assert failed.returncode == 1 and json.loads(failed.stdout)["approved"] is False
    assert "FAILED" in failed.stderr and not (tmp_path / "bad").exists()


def test_files_whose_extension_lies_exit_2_one_line(tmp_path):
    import zipfile

    text_as_pt = tmp_path / "text.pt"
    text_as_pt.write_text("just some notes")
    zip_as_pt = tmp_path / "zip.pt"
    with zipfile.ZipFile(zip_as_pt, "w") as archive:
        archive.writestr("notes.txt", "not a model")
    text_as_onnx = tmp_path / "text.onnx"
    text_as_onnx.write_text("just some notes")
    for path, message in (
        (text_as_pt, "not a PyTorch file"),
        (zip_as_pt, "zip file but not a PyTorch archive"),
        (text_as_onnx, "not an ONNX model (its content is text)"),
    ):
        result = optkit("convert", str(path), "-o", str(tmp_path / "o"))
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 2 and last.startswith("source model error: ") and message in last, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_recipes_doc_prints_and_updates_the_field_tables(tmp_path):
    from optkit.recipe_doc import BEGIN, END

    printed = runner.invoke(app, ["recipes", "doc"])
    assert printed.exit_code == 0 and "### `QuantizeDynamicPass`" in printed.output
    page = tmp_path / "recipes.md"
    page.write_text(f"# Recipes\n{BEGIN}\nstale\n{END}\nend\n")
    updated = runner.invoke(app, ["recipes", "doc", "--update", str(page)])
    assert updated.exit_code == 0
    text = page.read_text()
    assert "stale" not in text and "| `search_budget_s` |" in text and text.endswith(f"{END}\nend\n")
    unmarked = tmp_path / "plain.md"
    unmarked.write_text("# no markers\n")
    refused = runner.invoke(app, ["recipes", "doc", "--update", str(unmarked)])
    assert refused.exit_code == 2 and unmarked.read_text() == "# no markers\n"
