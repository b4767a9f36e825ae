"""Write the artifact folder atomically: everything goes into a hidden temporary sibling folder,
which is renamed into place only when complete. A run that fails or is interrupted leaves no
folder that claims approval (the temporary folder is removed).

Nothing of the user's is lost: ``--overwrite`` replaces only an optkit artifact (a folder whose
``manifest.json`` parses as :class:`~optkit.artifact.manifest.Manifest` and that holds no file the
manifest does not list) or an empty folder, and never a folder that is or holds the source model
or the data. An ``-o`` that is a symbolic link (or goes through one) is resolved: the artifact is
written at the link's target, and the link keeps pointing at it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from optkit.errors import OutputError
from optkit.hashing import sha256_file

MANIFEST = "manifest.json"
SIGNATURE = "model.sig"  # outside the manifest: it signs it (see optkit.artifact.signing)


def resolve_output(output: str | Path) -> Path:
    """The real path ``output`` names: symbolic links (of ``output`` or of a parent) resolved, so
    that staging, the swap and the clean-up all happen beside the real folder."""
    return Path(os.path.realpath(output))


def not_replaceable(folder: Path) -> str | None:
    """Why ``--overwrite`` must not replace the existing folder ``folder``, or None when it may.

    It may when the folder is empty, or is an unchanged optkit artifact: ``manifest.json`` parses as
    our :class:`~optkit.artifact.manifest.Manifest`, and every other entry is a regular file (not a
    folder, not a symlink) that the manifest lists with the same sha256 and size, or the signature
    ``model.sig``. A file the user changed after optkit wrote it is the user's, and is kept.
    """
    from pydantic import ValidationError

    from optkit.artifact.manifest import Manifest

    try:
        entries = sorted(p.name for p in folder.iterdir())
    except OSError as exc:
        return f"cannot be listed ({exc.strerror or exc})"
    if not entries:
        return None
    if MANIFEST not in entries:
        return f"holds files that are not an optkit artifact (no {MANIFEST}; it holds {_some(entries)})"
    if not (folder / MANIFEST).is_file():  # a folder or FIFO named manifest.json: never opened
        return f"holds files that are not an optkit artifact (its {MANIFEST} is not a file)"
    try:
        manifest = Manifest.model_validate(json.loads((folder / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, ValidationError):
        return f"holds files that are not an optkit artifact (its {MANIFEST} is not an optkit manifest)"
    extra = [name for name in entries if name not in (MANIFEST, SIGNATURE) and name not in manifest.files]
    if extra:
        return f"holds files that are not an optkit artifact (not in its {MANIFEST}: {_some(extra)})"
    odd = [name for name in entries if name != MANIFEST and not _regular(folder / name)]
    if odd:
        return f"holds entries that are not plain files optkit wrote (folders or links: {_some(odd)})"
    changed = [
        name
        for name, entry in manifest.files.items()
        if name in entries
        and ((folder / name).stat().st_size != entry.bytes or sha256_file(folder / name) != entry.sha256)
    ]
    if changed:
        return f"holds files changed since optkit wrote them ({_some(sorted(changed))}): they are yours now"
    return None


def _regular(path: Path) -> bool:
    """A regular file, not a symlink (``lstat``)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output(output: Path, overwrite: bool, protect: Iterable[str | Path | None] = ()) -> None:
    """Fail early (before any work) when ``output`` cannot or must not be written.

    Args:
        output: the ``-o`` folder (a symbolic link is resolved, see :func:`resolve_output`).
        overwrite: ``--overwrite`` was given.
        protect: the user's input paths (source model, data, calibration data; ``None`` skipped)
            that the output must neither be nor contain.

    Raises:
        OutputError: it exists and ``overwrite`` is False; it is a file; it is or contains a
            protected path; with ``overwrite``, it holds anything but an optkit artifact (see
            :func:`not_replaceable`); its parent cannot be created or written.
    """
    real = resolve_output(output)
    for item in protect:
        if item is None or not str(item):
            continue
        kept = resolve_output(item)
        if _inside(kept, real):
            what = "is" if kept == real else "contains"
            raise OutputError(
                f"output folder {output} {what} the input {item}; writing the artifact there would replace it",
                "choose an -o folder outside the model and data folders",
            )
    if real.exists() and not real.is_dir():
        raise OutputError(f"output path {output} is a file", "choose a folder path with -o")
    if real.exists() and not overwrite:
        raise OutputError(f"output folder {output} already exists", "pass --overwrite or choose another -o")
    if real.exists():
        why = not_replaceable(real)
        if why:
            raise OutputError(
                f"--overwrite refused: output folder {output} {why}",
                "--overwrite replaces only an optkit artifact or an empty folder; choose another -o",
            )
    parent = real.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output folder {parent}: {exc.strerror or exc}",
            "choose an -o folder on a writable file system",
        ) from None
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write to {parent}", "choose a writable -o folder")


FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextmanager
def staging(output: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``output`` (beside its real path, when ``output`` is or
    goes through a symbolic link); it is deleted if the block raises
    (Ctrl-C included).

    Raises:
        OutputError: the folder cannot be created, or the block fails to write a file (``OSError``:
            disk full, quota, read-only file system, permissions), named in one line.
    """
    real = resolve_output(output)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.tmp-", dir=real.parent))
    except OSError as exc:
        raise write_error(output, exc) from exc
    try:
        yield tmp
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(output, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_error(output: Path, exc: OSError) -> OutputError:
    """The one-line :class:`OutputError` for an ``OSError`` raised while writing the artifact
    ``output``: a full disk (``ENOSPC``, ``EDQUOT``, ``EFBIG``) or any other write failure."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f" ({Path(exc.filename).name})" if exc.filename else ""
    if exc.errno in FULL_DISK:
        return OutputError(
            f"no space left to write the artifact {output}: {reason}{where}; nothing was written",
            "free disk space on that file system, or choose another -o",
        )
    return OutputError(
        f"cannot write the artifact {output}: {reason}{where}; nothing was written",
        "check that the -o folder's file system is writable and has free space",
    )


def publish(tmp: Path, output: Path, overwrite: bool) -> None:
    """Rename the complete ``tmp`` folder to ``output``.

    With ``overwrite`` an existing ``output`` is first renamed aside and deleted after the swap,
    so ``output`` is at every moment either the old artifact or the new one. A symbolic link
    ``output`` (or parent) is resolved first: the real folder is swapped, the link is left as is.
    The existing folder is checked again (:func:`not_replaceable`) right before the swap, in case
    files were put there during the run.

    Raises:
        OutputError: ``output`` appeared meanwhile (another run) and ``overwrite`` is False; it no
            longer holds only an optkit artifact; the rename fails.
    """
    real = resolve_output(output)
    old = None
    if real.exists():
        why = not_replaceable(real) if overwrite and real.is_dir() else None
        if not overwrite or why or not real.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            if not overwrite:
                raise OutputError(
                    f"output folder {output} was created by another run meanwhile",
                    "pass --overwrite or choose another -o",
                )
            raise OutputError(
                f"--overwrite refused: output folder {output} {why or 'is not a folder'}; nothing was written",
                "--overwrite replaces only an optkit artifact or an empty folder; choose another -o",
            )
        old = real.parent / f".{real.name}.old-{os.getpid()}"
        os.rename(real, old)
    try:
        os.rename(tmp, real)
    except OSError as exc:
        if old is not None:
            os.rename(old, real)
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(
            f"cannot move the artifact into {output}: {exc}",
            "another run may be writing the same folder; choose another -o",
        ) from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
