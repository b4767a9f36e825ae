"""The report's plots as inline SVG (Matplotlib), from the typed manifest's records.

Matplotlib's SVG backend was picked over Plotly and Vega-Lite: its output is static markup with the
glyphs drawn as paths (``svg.fonttype = "path"``), so a plot needs no script, no font and no
network, and weighs tens of kB (plotly.js inlined is about 3.5 MB, over the report's 3 MB budget;
Vega-Lite needs vega.js inlined too). With ``svg.hashsalt`` fixed and no ``Date`` metadata the
bytes are a function of the data alone, so ``optkit report`` reproduces them exactly.

Every function returns one ``<svg>`` element as text (no XML prolog), or None when the records
hold nothing to plot. Units: latency in ms, throughput in samples/s, F1 in points.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from optkit.records.manifest import (
    AccuracyRecord,
    BatchScanRecord,
    EntityScore,
    GateRecord,
    OutputRecord,
    ShapeRecord,
)
from optkit.records.search import SearchReport

SOURCE_COLOR, ARTIFACT_COLOR, CHOSEN_COLOR = "#8c8c8c", "#1f77b4", "#d62728"

_RC: dict[Any, Any] = {
    "svg.hashsalt": "optkit-report",  # element ids from this salt, not from a random uuid
    "svg.fonttype": "path",  # glyphs as paths: no font to fetch or embed
    "font.family": "DejaVu Sans",  # shipped with Matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": True,
}


@contextmanager
def _figure(width: float, height: float) -> Iterator:
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with rc_context(_RC):
        yield Figure(figsize=(width, height), dpi=72, layout="constrained")


def _svg(fig) -> str:
    """The figure as an ``<svg>`` element: no prolog, doctype or date (deterministic bytes)."""
    from matplotlib import rc_context

    buffer = io.StringIO()
    with rc_context(_RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :].strip()


def _shape_label(shape: ShapeRecord) -> str:
    seq = f"×{shape.sequence_length}" if shape.sequence_length else ""
    device = "" if shape.device == "cpu" else f" {shape.device}"
    return f"{shape.batch_size}{seq}{device}"


def latency_plot(shapes: list[ShapeRecord]) -> str | None:
    """Bars of the p50 latency (ms) per shape, source vs artifact, error bar up to the p90."""
    if not shapes:
        return None
    with _figure(max(4.0, 0.9 * len(shapes) + 2), 2.8) as fig:
        ax = fig.subplots()
        xs = list(range(len(shapes)))
        for offset, name, color in ((-0.2, "source", SOURCE_COLOR), (0.2, "artifact", ARTIFACT_COLOR)):
            lat = [getattr(s, name) for s in shapes]
            p50 = [r.p50_ms for r in lat]
            up = [max(r.p90_ms - r.p50_ms, 0.0) for r in lat]
            ax.bar([x + offset for x in xs], p50, 0.4, yerr=[[0.0] * len(p50), up], capsize=3, color=color, label=name)
        ax.set_xticks(xs, [_shape_label(s) for s in shapes])
        ax.set_xlabel("batch × sequence length")
        ax.set_ylabel("latency (ms): p50, bar to p90")
        ax.legend(frameon=False)
        return _svg(fig)


def throughput_plot(shapes: list[ShapeRecord]) -> str | None:
    """Throughput (samples/s) vs batch size, one line per runner and (device, sequence length);
    None with fewer than two batch sizes or no throughput recorded."""
    groups: dict[tuple[str, int | None], list[ShapeRecord]] = {}
    for s in shapes:
        if s.source.throughput is not None and s.artifact.throughput is not None:
            groups.setdefault((s.device, s.sequence_length), []).append(s)
    if not any(len({s.batch_size for s in g}) > 1 for g in groups.values()):
        return None
    with _figure(4.5, 2.8) as fig:
        ax = fig.subplots()
        for (device, seq), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
            group = sorted(group, key=lambda s: s.batch_size)
            where = f" ({device}{f', seq {seq}' if seq else ''})"
            for name, color, style in (("source", SOURCE_COLOR, "--"), ("artifact", ARTIFACT_COLOR, "-")):
                ax.plot(
                    [s.batch_size for s in group],
                    [getattr(s, name).throughput for s in group],
                    style,
                    marker="o",
                    color=color,
                    label=name + where,
                )
        ax.set_xscale("log", base=2)
        batches = sorted({s.batch_size for g in groups.values() for s in g})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.set_xlabel("batch size")
        ax.set_ylabel("samples/s")
        ax.legend(frameon=False, fontsize=7)
        return _svg(fig)


def batch_scan_plot(scan: BatchScanRecord | None) -> str | None:
    """The artifact's throughput (samples/s) against the batch size of the scan, the best batch
    size starred; None without a scan or with fewer than two points."""
    points = [p for p in scan.points if p.latency.throughput is not None] if scan else []
    if scan is None or len(points) < 2:
        return None
    with _figure(4.5, 2.8) as fig:
        ax = fig.subplots()
        batches = [p.batch_size for p in points]
        ax.plot(
            batches, [p.latency.throughput for p in points], "-", marker="o", color=ARTIFACT_COLOR, label="artifact"
        )
        best = [p for p in points if p.batch_size == scan.best_batch_size]
        if best:
            ax.scatter(
                [best[0].batch_size],
                [best[0].latency.throughput],
                s=90,
                marker="*",
                color=CHOSEN_COLOR,
                zorder=3,
                label=f"best: batch {scan.best_batch_size}",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        seq = f", seq {scan.sequence_length}" if scan.sequence_length else ""
        ax.set_xlabel(f"batch size ({scan.device}{seq})")
        ax.set_ylabel("samples/s")
        ax.legend(frameon=False, fontsize=7)
        return _svg(fig)


def search_plot(search: SearchReport, gates: list[GateRecord]) -> str | None:
    """Accuracy vs latency of every candidate: x = p50 (ms) at the search's shape, y = the first
    accuracy gate's value, a dashed line at its threshold, the chosen candidate marked."""
    points = [c for c in search.candidates if c.gates and c.latency_ms is not None and c.gates[0].value is not None]
    if not points:
        return None
    gate_name = points[0].gates[0].name
    with _figure(4.8, 3.0) as fig:
        ax = fig.subplots()
        for c in points:
            chosen = c.id == search.chosen
            ax.scatter(
                [c.latency_ms],
                [c.gates[0].value],
                s=60 if chosen else 25,
                marker="*" if chosen else ("o" if c.passed else "x"),
                color=CHOSEN_COLOR if chosen else (ARTIFACT_COLOR if c.passed else SOURCE_COLOR),
                zorder=3,
            )
            ax.annotate(
                str(c.id),
                (c.latency_ms or 0.0, c.gates[0].value or 0.0),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        gate = next((g for g in gates if g.name == gate_name), None)
        if gate is not None:
            ax.axhline(gate.threshold, linestyle="--", color=CHOSEN_COLOR, linewidth=1)
        ax.set_xlabel(f"p50 latency (ms) at {search.latency_shape}")
        ax.set_ylabel(gate_name.split()[0])
        ax.set_title(f"candidates: star = chosen ({search.chosen}), x = failed a gate", fontsize=8)
        return _svg(fig)


def error_histogram_plot(output: OutputRecord) -> str | None:
    """Histogram of |artifact − source| over one output's elements, half-decade bins on a log axis."""
    hist = output.error_histogram
    if hist is None or not any(hist.counts):
        return None
    with _figure(4.0, 2.4) as fig:
        ax = fig.subplots()
        lefts = [max(e, 1e-10) for e in hist.edges[:-1]]
        widths = [hi - lo for lo, hi in zip(lefts, hist.edges[1:], strict=True)]
        ax.bar(lefts, hist.counts, widths, align="edge", color=ARTIFACT_COLOR)
        ax.set_xscale("log")
        ax.set_xlabel(f"|artifact − source| of {output.name} (first bin holds 0)")
        ax.set_ylabel("elements")
        return _svg(fig)


def flips_plot(accuracy: AccuracyRecord) -> str | None:
    """Horizontal bars: the most frequent tag flips (token classification) or label flips
    (tabular classifiers' disagreements), ``source → artifact``, by count."""
    if accuracy.tag_flips:
        flips = [(f"{f.source} → {f.artifact}", f.count) for f in accuracy.tag_flips]
        what = "tokens"
    else:
        counts: dict[str, int] = {}
        for d in accuracy.disagreements:
            key = f"{d.source} → {d.artifact}"
            counts[key] = counts.get(key, 0) + 1
        flips = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:30]
        what = "samples"
    if not flips:
        return None
    flips = flips[::-1]
    with _figure(4.5, 0.9 + 0.22 * len(flips)) as fig:
        ax = fig.subplots()
        ax.barh(range(len(flips)), [n for _, n in flips], color=CHOSEN_COLOR)
        ax.set_yticks(range(len(flips)), [label for label, _ in flips])
        ax.set_xlabel(f"{what} whose prediction flipped (source → artifact)")
        return _svg(fig)


def entity_f1_plot(scores: dict[str, EntityScore]) -> str | None:
    """Grouped bars of per-entity-type F1 (points), source vs artifact."""
    if not scores:
        return None
    kinds = list(scores)
    with _figure(max(3.5, 0.8 * len(kinds) + 1.5), 2.6) as fig:
        ax = fig.subplots()
        xs = list(range(len(kinds)))
        ax.bar([x - 0.2 for x in xs], [scores[k].source for k in kinds], 0.4, color=SOURCE_COLOR, label="source")
        ax.bar([x + 0.2 for x in xs], [scores[k].artifact for k in kinds], 0.4, color=ARTIFACT_COLOR, label="artifact")
        ax.set_xticks(xs, [f"{k} ({scores[k].support})" for k in kinds])
        ax.set_ylabel("entity F1 (points)")
        ax.set_ylim(0, 105)
        ax.legend(frameon=False)
        return _svg(fig)


__all__ = [
    "batch_scan_plot",
    "entity_f1_plot",
    "error_histogram_plot",
    "flips_plot",
    "latency_plot",
    "search_plot",
    "throughput_plot",
]
