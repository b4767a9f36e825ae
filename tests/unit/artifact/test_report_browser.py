"""report.html in a real browser: Debian's Chromium (headless, --no-sandbox --disable-gpu) driven
by Playwright; every plot present, no console error, no network request, a 1280×800 screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _load(page_path: Path, shot: Path) -> tuple[list[str], list[str], list[str]]:
    """(console errors, non-file requests, plot ids) of ``page_path`` loaded in Chromium."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.resolve().as_uri())
            page.wait_for_load_state("load")
            plots = page.eval_on_selector_all(
                "figure.plot svg", "els => els.map(e => e.closest('figure').dataset.plot)"
            )
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    others = [u for u in requests if u != page_path.resolve().as_uri()]
    return errors, others, plots


pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on this machine (apt-get install -y chromium; .ci/run installs it)"
)


def test_approved_ner_int8_page_in_chromium(report_runs, tmp_path):
    shot = tmp_path / "approved.png"
    errors, requests, plots = _load(report_runs["ok"] / "report.html", shot)
    assert errors == [] and requests == []
    assert {"latency", "throughput", "search-1", "errors-1", "entity-f1"} <= set(plots)
    assert shot.stat().st_size > 10_000  # a real 1280×800 picture, not an empty page


def test_rejected_run_page_in_chromium(report_runs, tmp_path):
    shot = tmp_path / "rejected.png"
    errors, requests, plots = _load(report_runs["bad_reports"] / "report.html", shot)
    assert errors == [] and requests == []
    assert {"latency", "errors-1"} <= set(plots)
    assert shot.stat().st_size > 10_000
