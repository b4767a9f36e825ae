"""Atomic artifact writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from optkit.artifact.emit import check_output, publish, staging
from optkit.errors import OutputError
from tests_support import blank_sections


def test_existing_output_refused_without_overwrite(tmp_path):
    out = tmp_path / "art"
    out.mkdir()
    with pytest.raises(OutputError, match="--overwrite"):
        check_output(out, overwrite=False)
    check_output(out, overwrite=True)


def test_output_that_is_a_file(tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output(out, overwrite=True)


def fake_artifact(folder, files=("model.onnx",), content="old"):
    """A folder laid out like an optkit artifact: ``files`` plus a manifest.json that lists them with
    their real sha256 (an artifact exactly as optkit wrote it)."""
    from optkit.artifact.manifest import FileEntry, Manifest
    from optkit.hashing import sha256_file

    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        (folder / name).write_text(content)
    manifest = Manifest(
        approved=True,
        strict=False,
        **blank_sections(),
        steps=[],
        speed=None,
        gates=[],
        warnings=[],
        files={n: FileEntry(sha256=sha256_file(folder / n), bytes=len(content)) for n in files},
    )
    (folder / "manifest.json").write_text(manifest.model_dump_json())
    return folder


def test_publish_swaps_atomically(tmp_path):
    out = fake_artifact(tmp_path / "art")
    with staging(out) as tmp:
        (tmp / "new.txt").write_text("new")
        publish(tmp, out, overwrite=True)
    assert (out / "new.txt").read_text() == "new" and not (out / "model.onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["art"], "no temporary folders left behind"


@pytest.mark.parametrize("layout", ["user files", "artifact plus a user file", "foreign manifest.json"])
def test_overwrite_refuses_a_folder_that_is_not_an_optkit_artifact(tmp_path, layout):
    out = tmp_path / "art"
    if layout == "user files":
        out.mkdir()
        (out / "thesis.tex").write_text("mine")
    elif layout == "artifact plus a user file":
        fake_artifact(out)
        (out / "thesis.tex").write_text("mine")
    else:
        out.mkdir()
        (out / "manifest.json").write_text('{"name": "my web app"}')
        (out / "thesis.tex").write_text("mine")
    with pytest.raises(OutputError, match="holds files that are not an optkit artifact") as err:
        check_output(out, overwrite=True)
    assert str(out) in err.value.message
    assert (out / "thesis.tex").read_text() == "mine"


def test_files_added_during_the_run_stop_the_swap(tmp_path):
    """The folder is checked again right before the swap: what the user put there meanwhile stays."""
    out = fake_artifact(tmp_path / "art")
    check_output(out, overwrite=True)
    with pytest.raises(OutputError, match="not an optkit artifact"), staging(out) as tmp:
        (tmp / "model.onnx").write_text("new")
        (out / "notes.txt").write_text("mine")  # written while the run was going
        publish(tmp, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.onnx").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"], "no staging or .old folder left"


def test_empty_folder_and_artifact_may_be_overwritten(tmp_path):
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty", overwrite=True) is None  # no OutputError
    art = fake_artifact(tmp_path / "art")
    before = sorted((p.name, p.read_bytes()) for p in art.iterdir())
    assert check_output(art, overwrite=True) is None
    # a check only: nothing is removed or replaced before the new artifact is ready
    assert sorted((p.name, p.read_bytes()) for p in art.iterdir()) == before
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(OutputError, match="--overwrite"):
        check_output(art, overwrite=False)  # the same folder without --overwrite is refused


def test_output_that_is_or_holds_an_input_is_refused(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_text("weights")
    data = tmp_path / "data.conll"
    data.write_text("a\tO\n")
    with pytest.raises(OutputError, match="contains the input"):
        check_output(models, overwrite=True, protect=[models / "model.pt", data])
    with pytest.raises(OutputError, match="is the input"):
        check_output(tmp_path / "hf", overwrite=True, protect=[tmp_path / "hf", None])
    with pytest.raises(OutputError, match="contains the input"):
        check_output(tmp_path, overwrite=True, protect=[None, data])
    check_output(tmp_path / "new", overwrite=True, protect=[models / "model.pt", data])  # a sibling is fine
    assert (models / "model.pt").read_text() == "weights"


def test_cli_overwrite_on_the_source_models_folder_exits_2_and_keeps_everything(tiny, tmp_path):
    from typer.testing import CliRunner

    from optkit.cli.app import app

    folder = tmp_path / "project"
    folder.mkdir()
    model = folder / "model.pt"
    model.write_bytes(tiny["pt"].read_bytes())
    (folder / "notes.md").write_text("my notes")
    result = CliRunner().invoke(
        app,
        ["convert", str(model), "--recipe", "ner-int8", "--data", str(tiny["conll"]), "-o", str(folder), "--overwrite"],
    )
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("output error: ") and "contains the input" in last and str(model) in last, last
    assert str(folder) in last and "Traceback" not in result.output
    assert model.read_bytes() == tiny["pt"].read_bytes() and (folder / "notes.md").read_text() == "my notes"
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt", "notes.md"]


def test_symlinked_output_writes_the_target_and_keeps_the_link(tmp_path):
    """-o is a link to an artifact folder: the target is replaced, the link still points at it, and no
    `.NAME.old-PID` or staging folder is left anywhere."""
    real = fake_artifact(tmp_path / "store" / "real")
    link = tmp_path / "links" / "art"
    link.parent.mkdir()
    link.symlink_to(real, target_is_directory=True)
    check_output(link, overwrite=True)
    with staging(link) as tmp:
        (tmp / "model.onnx").write_text("new")
        publish(tmp, link, overwrite=True)
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert (real / "model.onnx").read_text() == "new" and (link / "model.onnx").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["real"]
    assert sorted(p.name for p in (tmp_path / "links").iterdir()) == ["art"]


def test_symlinked_output_to_user_content_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "photos.zip").write_text("precious")
    link = tmp_path / "out"
    link.symlink_to(home, target_is_directory=True)
    with pytest.raises(OutputError, match="not an optkit artifact"):
        check_output(link, overwrite=True)
    with pytest.raises(OutputError, match="not an optkit artifact"), staging(link) as tmp:  # and at the swap itself
        publish(tmp, link, overwrite=True)
    assert (home / "photos.zip").read_text() == "precious" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out"]


def test_output_under_a_symlinked_parent(tmp_path):
    (tmp_path / "disk").mkdir()
    (tmp_path / "mnt").symlink_to(tmp_path / "disk", target_is_directory=True)
    out = tmp_path / "mnt" / "art"
    fake_artifact(out)
    check_output(out, overwrite=True)
    with staging(out) as tmp:
        (tmp / "model.onnx").write_text("new")
        publish(tmp, out, overwrite=True)
    assert (tmp_path / "disk" / "art" / "model.onnx").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["art"], "no .art.old-PID debris"


def test_nested_output_on_a_read_only_file_system(tmp_path, monkeypatch):
    import errno
    import pathlib

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    with pytest.raises(OutputError, match=r"cannot create the output folder .*a/b: Read-only file system") as err:
        check_output(tmp_path / "a" / "b" / "c", overwrite=False)
    assert "writable" in err.value.hint


def test_failure_inside_staging_leaves_nothing(tmp_path):
    out = tmp_path / "art"
    with pytest.raises(RuntimeError), staging(out) as tmp:
        (tmp / "model.onnx").write_text("half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writer_is_detected(tmp_path):
    out = tmp_path / "art"
    with pytest.raises(OutputError, match="another run"), staging(out) as tmp:
        out.mkdir()  # another run published first
        publish(tmp, out, overwrite=False)
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_oserror_while_staging_is_one_line_output_error(tmp_path):
    import errno

    out = tmp_path / "art"
    with (
        pytest.raises(
            OutputError,
            match=r"no space left to write the artifact .*art: No space left on device "
            r"\(model.onnx\); nothing was written",
        ) as err,
        staging(out) as tmp,
    ):
        (tmp / "model.onnx").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "model.onnx"))
    assert "free disk space" in err.value.hint and _leftovers(tmp_path) == []
    with pytest.raises(OutputError, match="cannot write the artifact .*Read-only file system"), staging(out):
        raise OSError(errno.EROFS, "Read-only file system")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("failing", ["model.onnx", "report.md", "report.html"])
def test_disk_full_while_writing_the_artifact(tiny, tmp_path, monkeypatch, failing):
    """ENOSPC in the middle of writing model.onnx (onnx.save_model) or report.md: one-line error,
    exit 2, no output folder, no staging folder, no temporary work folder."""
    import errno
    import pathlib
    import tempfile

    import onnx
    from typer.testing import CliRunner

    from optkit.cli.app import app
    from tests_support import FAST

    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    real_save, real_write = onnx.save_model, pathlib.Path.write_text

    def full(path):
        with open(path, "wb") as handle:
            handle.write(b"\x08\x08")  # a few bytes made it to disk
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    def save_model(model, path, *args, **kwargs):
        if failing == "model.onnx" and ".tmp-" in str(path):
            full(path)
        return real_save(model, path, *args, **kwargs)

    def write_text(self, *args, **kwargs):
        if failing == self.name and failing in ("report.md", "report.html") and ".tmp-" in str(self):
            full(self)
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(onnx, "save_model", save_model)
    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    out = tmp_path / "runs" / "art"
    args = [
        "convert",
        str(tiny["pt"]),
        "--recipe",
        "ner-int8",
        "--data",
        str(tiny["conll"]),
        "-o",
        str(out),
        "--set",
        "passes=[]",
    ] + [f"--set={k}={v}" for k, v in FAST.items()]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("output error: no space left to write the artifact") and f"({failing})" in last
    assert "Traceback" not in result.output
    assert _leftovers(out.parent) == [], "no output folder and no staging folder"
    assert [p.name for p in work.iterdir() if p.name.startswith("optkit-")] == []


def test_overwrite_keeps_an_artifact_the_user_changed_or_nested_files_into(tmp_path):
    """An artifact is replaceable only while it is exactly what optkit wrote: a listed name that is
    now a folder of the user's files, or a listed file the user edited, makes it the user's."""
    import json as _json

    from optkit.artifact.emit import not_replaceable
    from optkit.artifact.manifest import Manifest, file_entries, seal

    def artifact(folder: Path) -> Path:
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"onnx")
        (folder / "report.md").write_text("# report\n")
        fields = {name: info.default for name, info in Manifest.model_fields.items() if not info.is_required()}
        manifest = Manifest(
            **{
                **fields,
                "approved": True,
                "strict": False,
                **blank_sections(),
                "steps": [],
                "speed": None,
                "gates": [],
                "warnings": [],
                "files": file_entries(folder, ["model.onnx", "report.md"]),
            }
        )
        (folder / "manifest.json").write_text(seal(manifest))
        return folder

    clean = artifact(tmp_path / "clean")
    assert not_replaceable(clean) is None
    (clean / "model.sig").write_bytes(b"sig")
    assert not_replaceable(clean) is None, "its signature belongs to the artifact"
    edited = artifact(tmp_path / "edited")
    (edited / "report.md").write_text("# report\nmy notes\n")
    assert "changed since optkit wrote them (report.md)" in not_replaceable(edited)
    nested = artifact(tmp_path / "nested")
    (nested / "report.md").unlink()
    (nested / "report.md").mkdir()
    (nested / "report.md" / "mine.txt").write_text("precious")
    assert "folders or links: report.md" in not_replaceable(nested)
    linked = artifact(tmp_path / "linked")
    (linked / "report.md").unlink()
    (linked / "report.md").symlink_to(tmp_path / "clean" / "report.md")
    assert "folders or links" in not_replaceable(linked)
    assert _json.loads((clean / "manifest.json").read_text())["approved"] is True
