"""``report.html``: one self-contained page (no script, no font, no network) rendered from a
:class:`~optkit.records.manifest.Manifest` alone, by the Jinja2 template
``templates/report.html.j2`` (autoescaped: a model path or tag name cannot inject markup) with the
plots of :mod:`optkit.reporting.plots` inlined as SVG.

The page is a function of the manifest's content: no clock, no random id. It cannot show its own
hash, nor the manifest's digest, nor the attestation (which covers the page), so
:func:`report_view` drops those before rendering; ``optkit report`` re-renders an artifact's page
byte for byte from its ``manifest.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from markupsafe import Markup

from optkit.records.manifest import CONTENDED_MARK, GateRecord, Manifest
from optkit.records.search import SearchReport
from optkit.reporting import plots
from optkit.reporting.serving import SERVING_COLUMNS, serving_rows, serving_summary

REPORT_HTML = "report.html"
#: files written after the page (they hash it), so the page does not list them
LATER_FILES = frozenset({REPORT_HTML, "attestation.intoto.json"})

STATUS = {"passed": "PASS", "failed": "FAIL", "inconclusive": "INCONCLUSIVE", "skipped": "SKIP"}


def report_view(manifest: Manifest) -> Manifest:
    """The manifest as the page shows it: without :data:`LATER_FILES` and without the digest, and
    as read back from JSON (NaN becomes None there), so that a run's page and one re-rendered
    from its ``manifest.json`` are the same."""
    files = {name: entry for name, entry in manifest.files.items() if name not in LATER_FILES}
    return Manifest.model_validate_json(manifest.model_copy(update={"files": files, "digest": ""}).model_dump_json())


def blocking(gate: GateRecord, strict: bool) -> bool:
    """The gate stopped approval: failed or inconclusive, or skipped under ``strict``."""
    return gate.status in ("failed", "inconclusive") or (strict and gate.status == "skipped")


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for a table: ``—`` for None, scientific notation for tiny/huge values."""
    if value is None:
        return "—"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


@dataclass
class SearchView:
    """One search of the page: its step, report and scatter (SVG or None)."""

    step: str
    report: SearchReport
    plot: Markup | None


def _markup(svg: str | None) -> Markup | None:
    return Markup(svg) if svg is not None else None  # noqa: S704 -- Matplotlib's own SVG, text escaped by it


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("optkit.reporting", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.globals.update(STATUS=STATUS, blocking=blocking, CONTENDED_MARK=CONTENDED_MARK)
    return env


def render_html(manifest: Manifest, compact: bool = False) -> str:
    """The report page of ``manifest`` (an approved artifact's, or a rejected run's unsealed one).

    Args:
        manifest: the typed manifest; :func:`report_view` is applied first.
        compact: the notebook form (:meth:`~optkit.results.ConvertResult._repr_html_`): verdict,
            gates, the latency plot and the search scatters only, as an HTML fragment.

    Returns:
        UTF-8 text, the same for the same manifest content (deterministic SVG, no clock).
    """
    view = report_view(manifest)
    speed = view.speed
    searches = [
        SearchView(step.name, step.details.search, _markup(plots.search_plot(step.details.search, view.gates)))
        for step in view.steps
        if step.details.search is not None
    ]
    context = {
        "m": view,
        "compact": compact,
        "rejections": [g.name for g in view.gates if blocking(g, view.strict)],
        "latency_plot": _markup(plots.latency_plot(speed.shapes)) if speed else None,
        "searches": searches,
        "serving": view.serving,
        "serving_summary": serving_summary(view.serving) if view.serving else "",
        "serving_columns": SERVING_COLUMNS,
        "serving_rows": serving_rows(view.serving) if view.serving else [],
    }
    if not compact:
        context.update(
            throughput_plot=_markup(plots.throughput_plot(speed.shapes)) if speed else None,
            scan_plot=_markup(plots.batch_scan_plot(speed.batch_scan)) if speed else None,
            histograms=[(o.name, _markup(plots.error_histogram_plot(o))) for o in view.accuracy.outputs],
            flips_plot=_markup(plots.flips_plot(view.accuracy)),
            entity_plot=_markup(plots.entity_f1_plot(view.accuracy.entity_f1)),
        )
    return _environment().get_template("report.html.j2").render(**context)


__all__ = ["LATER_FILES", "REPORT_HTML", "blocking", "fmt", "render_html", "report_view"]
