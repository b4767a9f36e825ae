"""Faulty command lines and file systems: one line on stderr, the right exit code, nothing lost."""

from __future__ import annotations

import errno
import pathlib
import tempfile

import pytest
from typer.testing import CliRunner

from optkit.cli.app import app, main
from optkit.cli.errors import guarded
from optkit.errors import OutputError, RecipeError, UsageError
from optkit.recipe import flag_overrides, load_recipe, searches

runner = CliRunner()


def raising(exc):
    def fn():
        raise exc

    return fn


@pytest.mark.parametrize(
    "code, fix",
    [
        (errno.EACCES, "permissions"),
        (errno.EROFS, "read-only"),
        (errno.EPERM, "permissions"),
        (errno.ENOENT, "exist"),
        (errno.ENOTDIR, "not a folder"),
        (errno.EISDIR, "is a folder"),
        (errno.ENOSPC, "free disk space"),
    ],
)
def test_a_plain_file_system_oserror_is_exit_2_naming_the_path(capsys, code, fix):
    import os

    with pytest.raises(SystemExit) as exit_:
        guarded(raising(OSError(code, os.strerror(code), "/data/run/model.onnx")))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/data/run/model.onnx" in err and fix in err and "Traceback" not in err


def test_a_network_oserror_is_still_a_bug(capsys):
    with pytest.raises(SystemExit) as exit_:
        guarded(raising(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")))
    assert exit_.value.code == 3 and capsys.readouterr().err.startswith("internal error:")


def test_nested_output_on_a_read_only_mount_is_exit_2_one_line(tiny, tmp_path, monkeypatch):
    real_mkdir = pathlib.Path.mkdir
    mount = tmp_path / "ro"

    def mkdir(self, *args, **kwargs):
        if mount in self.parents or self == mount:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    result = runner.invoke(app, ["convert", str(tiny["pt"]), "--recipe", "fp32", "-o", str(mount / "a" / "b" / "c")])
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("output error: cannot create the output folder") and "Read-only" in last
    assert "Traceback" not in result.output and not mount.exists()


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["convert", "m.pt", "--bogus"], "No such option: --bogus"),
        (["convert"], "Missing argument 'source'"),
        (["convert", "m.pt", "--max-samples", "many"], "'--max-samples'"),
        (["recipes", "show"], "Missing argument 'name'"),
        (["convert", "m.pt", "--threads", "0"], "'--threads'"),
        (["convert", "m.pt", "--max-samples", "0"], "'--max-samples'"),
        (["convert", "m.pt", "--opset", "999"], "'--opset'"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys, argv, problem):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    captured = capsys.readouterr()
    assert exit_.value.code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("usage error: ") and problem in lines[0], captured.err
    command = " ".join(["optkit", *[a for a in argv[:2] if a in ("convert", "recipes", "show")]])
    assert lines[0].endswith(f"(hint: {command} --help)")
    assert "╭" not in captured.err + captured.out


def test_help_still_works(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["convert", "--help"])
    assert exit_.value.code == 0 and "--junit-xml" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2 and "convert" in capsys.readouterr().out  # no command: the help


# --------------------------------------------------------------------------- --junit-xml
@pytest.mark.parametrize("where", ["a folder", "under a missing folder", "read-only folder"])
def test_unwritable_junit_path_stops_before_the_run(tiny, tmp_path, monkeypatch, where):
    reports = tmp_path / "reports"
    reports.mkdir()
    target = {
        "a folder": reports,
        "under a missing folder": tmp_path / "nope" / "gates.xml",
        "read-only folder": reports / "gates.xml",
    }[where]
    if where == "read-only folder":  # root ignores mode bits: the file system refuses instead
        real = tempfile.mkstemp

        def mkstemp(*args, dir=None, **kwargs):
            if dir is not None and pathlib.Path(dir) == reports:
                raise OSError(errno.EROFS, "Read-only file system", str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "convert",
            str(tiny["pt"]),
            "--recipe",
            "fp32",
            "--data",
            str(tiny["conll"]),
            "-o",
            str(out),
            "--junit-xml",
            str(target),
        ],
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("output error: --junit-xml ") and str(target) in lines[-1]
    assert not any(line.startswith("…") for line in lines), "refused before any step ran"
    assert not out.exists() and list(reports.iterdir()) == []


def test_junit_writer_is_atomic_and_raises_output_error(tmp_path, monkeypatch):
    import os

    from optkit.artifact.junit import write_junit
    from optkit.validation.gates import GateResult

    gate = GateResult(
        name="tag_agreement",
        kind="accuracy",
        metric="tag_agreement",
        op=">=",
        threshold=0.99,
        value=1.0,
        status="passed",
    )
    path = tmp_path / "gates.xml"
    path.write_text("previous report")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError, match="cannot write --junit-xml .*gates.xml: No space left"):
        write_junit(path, "fp32", [gate], strict=False)
    assert path.read_text() == "previous report" and sorted(p.name for p in tmp_path.iterdir()) == ["gates.xml"]
    monkeypatch.undo()
    write_junit(path, "fp32", [gate], strict=False)
    assert path.read_text().startswith("<?xml") and 'name="tag_agreement"' in path.read_text()
    with pytest.raises(OutputError, match="cannot write --junit-xml"):
        write_junit(tmp_path, "fp32", [gate], strict=False)  # a folder


# --------------------------------------------------------------------------- flags the recipe ignores
@pytest.mark.parametrize(
    "flag, value, recipe",
    [
        ("--calibration-data", "calib.npz", "ner-int8"),
        ("--search-budget", "30", "fp32"),
        ("--search-budget", "30", "tabular-fp32"),
    ],
)
def test_a_flag_without_a_pass_to_take_it_is_a_usage_error(tiny, tmp_path, flag, value, recipe):
    result = runner.invoke(
        app, ["convert", str(tiny["pt"]), "--recipe", recipe, flag, value, "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"usage error: {flag} has no effect: recipe '{recipe}'"), last
    assert not (tmp_path / "o").exists()


def test_flags_go_to_the_passes_that_take_them_after_set():
    ner = load_recipe("ner-int8")
    assert flag_overrides(ner, "--search-budget", "search_budget_s", 5.0, searches, "a search") == {
        "passes.2.search_budget_s": 5.0
    }
    off = load_recipe("ner-int8", {"passes.2.search": "off"})  # a --set that turns the search off
    with pytest.raises(UsageError, match="--search-budget has no effect"):
        flag_overrides(off, "--search-budget", "search_budget_s", 5.0, searches, "a search")
    cnn = load_recipe("cnn-int8")  # quantize-static with search: true
    assert flag_overrides(cnn, "--search-budget", "search_budget_s", 5.0, searches, "a search") == {
        "passes.1.search_budget_s": 5.0
    }
    static_off = load_recipe("cnn-int8", {"passes.1.search": False})
    with pytest.raises(UsageError, match="--search-budget has no effect"):
        flag_overrides(static_off, "--search-budget", "search_budget_s", 5.0, searches, "a search")
    fp16 = load_recipe("ner-fp16")
    assert list(flag_overrides(fp16, "--search-budget", "search_budget_s", 5.0, searches, "a search")) == [
        f"passes.{i}.search_budget_s" for i, p in enumerate(fp16.passes) if p.type == "fp16"
    ]


def test_a_recipe_left_without_accuracy_gates_is_refused(tiny, tmp_path):
    with pytest.raises(RecipeError, match="validation.gates is empty"):
        load_recipe("fp32", {"validation.gates": []})
    result = runner.invoke(
        app, ["convert", str(tiny["pt"]), "--recipe", "fp32", "--set", "validation.gates=[]", "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "recipe error:" in result.output.strip().splitlines()[-1]
