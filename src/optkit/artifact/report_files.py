"""Writing the reports people look at: ``report.html`` into an artifact, ``--report-dir`` (the
page and ``report.md`` of any run, rejected ones included) and ``--summary-md`` (the CI job
summary). The pages themselves are rendered by :mod:`optkit.reporting` from the manifest.

The ``check_*`` functions run before the conversion, so an unwritable destination stops the run at
once (as ``--junit-xml`` does); the ``write_*`` functions write atomically.
"""

from __future__ import annotations

from pathlib import Path

from optkit.errors import OutputError
from optkit.paths import check_writable_file, write_atomic
from optkit.records.manifest import Manifest
from optkit.reporting.html import REPORT_HTML, render_html
from optkit.reporting.summary import render_summary
from optkit.results import ConvertResult

REPORT_DIR_FLAG = "--report-dir"
SUMMARY_FLAG = "--summary-md"


def write_report_html(folder: Path, manifest: Manifest) -> str:
    """Write ``folder/report.html`` rendered from ``manifest`` (see
    :func:`~optkit.reporting.html.render_html`); returns the file name, to hash in the manifest.

    Raises:
        OSError: the file cannot be written (the caller's ``staging`` block names it).
    """
    (folder / REPORT_HTML).write_text(render_html(manifest), encoding="utf-8")
    return REPORT_HTML


def check_report_dir(path: str | Path) -> Path:
    """Check, before any work, that ``--report-dir`` ``path`` can take ``report.html`` and
    ``report.md`` at the end; a missing folder is created (with its parents).

    Raises:
        OutputError: ``path`` is a file or cannot be created, or does not accept new files.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{REPORT_DIR_FLAG} {folder} is not a folder", "name a folder (created when missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{REPORT_DIR_FLAG} {folder} cannot be created: {exc.strerror or exc}", "name a writable folder"
        ) from None
    for name in (REPORT_HTML, "report.md"):
        check_writable_file(folder / name, REPORT_DIR_FLAG)
    return folder


def write_report_dir(folder: Path, result: ConvertResult) -> Path:
    """Write ``report.html`` and ``report.md`` of ``result`` (approved or not) into ``folder``;
    returns the page's path.

    Raises:
        OutputError: a file cannot be written; ValueError: ``result`` has no manifest yet.
    """
    from optkit.artifact.report import render_report

    if result.manifest is None:
        raise ValueError("the result has no manifest yet: the conversion has not finished")
    write_atomic(folder / REPORT_HTML, render_html(result.manifest).encode(), REPORT_DIR_FLAG)
    write_atomic(folder / "report.md", render_report(result).encode(), REPORT_DIR_FLAG)
    return folder / REPORT_HTML


def check_summary_path(path: str | Path) -> Path:
    """Check, before any work, that the ``--summary-md`` file can be written (an existing file, such
    as ``$GITHUB_STEP_SUMMARY``, is replaced).

    Raises:
        OutputError: ``path`` is a folder or another non-regular file, or its folder is missing or
            read-only.
    """
    return check_writable_file(path, SUMMARY_FLAG)


def write_summary(path: Path, manifest: Manifest, artifact: Path | None, report: Path | None = None) -> None:
    """Write the Markdown job summary (see :func:`~optkit.reporting.summary.render_summary`) to
    ``path`` atomically.

    Raises:
        OutputError: the file cannot be written; ``path`` is then unchanged.
    """
    text = render_summary(manifest, str(artifact) if artifact else None, str(report) if report else None)
    write_atomic(path, text.encode(), SUMMARY_FLAG)


def rerender(folder: Path) -> tuple[str, bool | None]:
    """Re-render an artifact's ``report.html`` from its ``manifest.json`` (the sealed digest is not
    checked here: ``optkit verify`` does that).

    Returns:
        ``(page, same)``: the page text, and whether the folder's ``report.html`` holds exactly
        those bytes (None when the folder has none: an artifact older than the page).

    Raises:
        OutputError: the folder or its manifest is missing or not an optkit manifest.
    """
    from optkit.artifact.verify import read_manifest

    manifest, _ = read_manifest(folder)
    page = render_html(manifest)
    existing = folder / REPORT_HTML
    if existing.is_symlink() or not existing.is_file():
        return page, None
    return page, existing.read_bytes() == page.encode()


__all__ = [
    "check_report_dir",
    "check_summary_path",
    "rerender",
    "write_report_dir",
    "write_report_html",
    "write_summary",
]
