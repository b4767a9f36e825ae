"""``report.md``: the human-readable account of a conversion (the manifest holds the same figures)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optkit.records.manifest import CONTENDED_MARK
from optkit.records.search import Candidate, SearchReport
from optkit.reporting.serving import SERVING_COLUMNS, serving_rows, serving_summary

if TYPE_CHECKING:
    from optkit.results import ConvertResult, StepRecord
    from optkit.validation.speed import SpeedReport

STATUS = {"passed": "PASS", "failed": "FAIL", "inconclusive": "INCONCLUSIVE", "skipped": "SKIP"}


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for a table: ``—`` for None, scientific notation for tiny/huge values."""
    if value is None:
        return "—"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def render_report(result: ConvertResult) -> str:
    """Markdown report: verdict, source, data, steps, accuracy, speed, gates, warnings, environment."""
    verdict = "APPROVED" if result.approved else "NOT APPROVED"
    env = result.manifest.environment if result.manifest is not None else None
    lines = [
        f"# optkit report: {verdict}",
        "",
        f"- source: `{result.source.path}` ({result.source.framework}, {result.source.kind}, "
        f"task {result.source.task or 'unknown'})",
        f"- recipe: `{result.recipe.name}` (sha256 {result.recipe.sha256()[:12]}) — {result.recipe.description}",
        f"- validation data: {result.data.kind} `{result.data.origin}`, {result.data.samples} samples"
        + ("" if result.data.real else " — **generated random inputs (last resort), not real data**"),
        f"- strict mode: {'on' if result.strict else 'off'}",
        f"- evidence: {result.evidence}; source model sandbox: "
        f"{result.sandbox.status if result.sandbox else 'unknown'}",
        "",
    ]
    if not result.approved:
        lines += ["Not approved: " + "; ".join(result.rejections), ""]
    lines += ["## Gates", ""]
    lines += _table(
        ["gate", "measured", "verdict", "note"],
        [[g.name, fmt(g.value), STATUS[g.status], g.reason] for g in result.gates],
    )
    lines += ["## Steps", ""]
    lines += _table(["step", "seconds", "details"], [[s.name, f"{s.seconds:.1f}", _details(s)] for s in result.steps])
    lines += _search_section(result)
    lines += _serving_section(result)
    acc = result.accuracy
    lines += [f"## Accuracy vs source ({acc.samples} samples)", ""]
    lines += _table(["metric", "value"], [[k, fmt(v)] for k, v in acc.metrics.items()])
    if acc.unavailable:
        lines += ["Not computed: " + "; ".join(f"{k} ({v})" for k, v in acc.unavailable.items()), ""]
    lines += _table(
        ["output", "shape", "max abs err", "mean abs err", "cosine min", "argmax agreement"],
        [
            [
                o.name,
                "×".join(map(str, o.shape)),
                fmt(o.max_abs_error),
                fmt(o.mean_abs_error),
                fmt(o.cosine_min),
                fmt(o.argmax_agreement),
            ]
            for o in acc.outputs
        ],
    )
    if acc.disagreements:
        lines += [f"### {len(acc.disagreements)} label disagreement(s) with the source", ""]
        lines += _table(
            ["sample", "source label", "artifact label", "max probability diff"],
            [
                [str(d["sample"]), str(d["source"]), str(d["artifact"]), fmt(d["max_probability_diff"])]
                for d in acc.disagreements[:50]
            ],
        )
    if result.speed:
        sp = result.speed
        lines += [
            f"## Speed vs source (same run, {sp.threads} threads, {sp.warmup} warm-up, "
            f"{sp.iterations} timed calls per block, alternating rounds, latency in ms)",
            "",
            "Speed-up = source p50 / artifact p50 over every round; the 95 % interval is a bootstrap over "
            "rounds. A speed gate passes only when the whole interval clears its threshold.",
            "",
        ]
        lines += _table(
            [
                "device",
                "batch",
                "seq",
                "source p50",
                "source p90",
                "source p99",
                "artifact p50",
                "artifact p90",
                "artifact p99",
                "artifact samples/s",
                "speed-up",
                "95 % interval",
                "rounds",
                "spread (CV)",
                "others' CPU",
            ],
            [
                [
                    s.device,
                    str(s.batch_size),
                    str(s.sequence_length or "—"),
                    f"{s.source.p50_ms:.2f}",
                    f"{s.source.p90_ms:.2f}",
                    fmt(s.source.p99_ms, 2),
                    f"{s.artifact.p50_ms:.2f}",
                    f"{s.artifact.p90_ms:.2f}",
                    fmt(s.artifact.p99_ms, 2),
                    f"{s.artifact.throughput:.1f}",
                    f"{s.speedup:.2f}×",
                    _interval(s),
                    str(s.rounds),
                    _spread(s),
                    _others(s),
                ]
                for s in sp.shapes
            ],
        )
        lines += [
            f"Size on disk: source {sp.size_mb.get('source', 0):.1f} MB, artifact "
            f"{sp.size_mb.get('artifact', 0):.1f} MB. "
            f"Load time: source {sp.load_seconds.get('source', 0):.2f} s, artifact "
            f"{sp.load_seconds.get('artifact', 0):.2f} s.",
            "",
        ]
        lines += _workload_lines(sp)
        for device, reason in sp.skipped_devices.items():
            lines += [f"- {device}: not measured — {reason}"]
        for warning in sp.warnings:
            lines += [f"- busy machine: {warning}"]
        lines += [""]
    if result.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in result.warnings] + [""]
    if env is None:
        lines += ["## Environment", "", "- not recorded", ""]
        return "\n".join(lines)
    flags = ", ".join(f for f, on in env.cpu.flags.items() if on)
    pkgs = ", ".join(f"{k} {v}" for k, v in env.packages.items())
    lines += [
        "## Environment",
        "",
        f"- python {env.python}, {env.platform}",
        f"- CPU: {env.cpu.model} ({env.cpu.logical_cores} logical cores); flags: {flags}",
        f"- packages: {pkgs}",
        "",
    ]
    return "\n".join(lines)


SEARCH_COLUMNS = [
    "#",
    "stage",
    "family",
    "settings",
    "fp32 nodes",
    "gates (value)",
    "p50 ms",
    "best ms",
    "speed-up vs fp32 [95 % CI]",
    "size MB",
    "verdict",
]
SEARCH_CONSOLE_COLUMNS = [
    "#",
    "stage",
    "family",
    "settings",
    "fp32",
    "gate values",
    "best ms",
    "speed-up [95 % CI]",
    "verdict",
]


def family_text(candidate: Candidate) -> str:
    """A candidate's family (``dynamic+smooth α=0.5``…); ``—`` in a report from before families."""
    return candidate.family or "—"


def chosen_family(search: SearchReport) -> str:
    """The chosen candidate's family, or ``—`` (a report from before families, or no such row)."""
    try:
        return family_text(search.chosen_candidate)
    except ValueError:
        return "—"


def speedup_text(candidate: Candidate) -> str:
    """A ranked candidate's speed-up over the fp32 input with its interval, e.g.
    ``1.85× [1.70, 2.01] ≈`` (``≈``: in a near-tie with the fastest); ``—`` when not ranked."""
    found = candidate.speedup
    if found is None:
        return "—"
    tie = " ≈" if found.near_tie else ""
    return f"{found.ratio:.2f}× [{found.ci_low:.2f}, {found.ci_high:.2f}]{tie}"


def ranking_text(search: SearchReport) -> str:
    """The ranking in one sentence for the report (empty when nothing was ranked)."""
    found = search.ranking
    if found is None:
        return ""
    tied = ", ".join(map(str, found.tied))
    return (
        f"Passing candidates {', '.join(map(str, found.timed))} were timed with candidate {found.reference} "
        f"in {found.rounds} alternating rounds of {found.calls_per_block} calls; fastest: {found.fastest}, "
        f"near-tie (≈): {tied}. Rule: {found.rule}."
    )


def search_tables(result: ConvertResult) -> list[tuple[str, SearchReport]]:
    """``(step name, search report)`` for every pass that ran a search."""
    return [(s.name, s.search) for s in result.steps if s.search is not None]


def search_rows(search: SearchReport) -> list[list[str]]:
    """One table row per candidate of a search (see :data:`SEARCH_COLUMNS`)."""
    rows = []
    for c in search.candidates:
        gates = "; ".join(f"{g.name.split()[0]} {fmt(g.value)} {STATUS[g.status]}" for g in c.gates)
        rows.append(
            [
                str(c.id),
                c.stage,
                family_text(c),
                c.settings,
                str(len(c.fp32_nodes)),
                c.error or gates,
                fmt(c.latency_ms, 2),
                fmt(c.best_ms, 2),
                speedup_text(c),
                fmt(c.size_mb, 1),
                c.verdict,
            ]
        )
    return rows


def search_console_rows(search: SearchReport) -> list[list[str]]:
    """Narrow rows for a terminal: gate values in the recipe's gate order, ✓ passed / ✗ failed."""
    mark = {"passed": "✓", "failed": "✗", "inconclusive": "?", "skipped": "-"}
    return [
        [
            str(c.id),
            c.stage,
            family_text(c),
            c.settings,
            str(len(c.fp32_nodes)),
            c.error[:40] if c.error else " ".join(f"{fmt(g.value)}{mark[g.status]}" for g in c.gates),
            fmt(c.best_ms, 2),
            speedup_text(c),
            c.verdict,
        ]
        for c in search.candidates
    ]


def _search_section(result: ConvertResult) -> list[str]:
    lines: list[str] = []
    for step, search in search_tables(result):
        outcome = "met every accuracy gate" if search.met_gates else "**no candidate met the accuracy gates**"
        lines += [
            f"## Search: {step}",
            "",
            f"{search.tried} candidate(s) in {search.elapsed_s} s (budget "
            f"{search.budget_s:g} s{', exhausted' if search.budget_exhausted else ''}); latency is the "
            f"p50 at {search.latency_shape}; the chosen candidate ({search.chosen}, family "
            f"{chosen_family(search)}) {outcome}. Fully quantized candidates are tried in expected-speed "
            "order and the first that passes wins; otherwise, among passing candidates the fastest wins; "
            "near-ties go to the most accurate, then the earliest.",
            "",
        ]
        if search.ranking is not None:
            lines += [ranking_text(search), ""]
        lines += _table(
            SEARCH_COLUMNS, [[f"**{x}**" if r[-1] == "chosen" else x for x in r] for r in search_rows(search)]
        )
        if search.fp32_nodes:
            lines += ["Nodes kept in float32: " + ", ".join(f"`{n}`" for n in search.fp32_nodes), ""]
        if search.sensitivity:
            lines += ["Most sensitive nodes (relative int8 error of the node's output):", ""]
            lines += _table(
                ["node", "op", "error", "method", "probe", "gate margin alone in fp32", "gain"],
                [
                    [s.node, s.op_type, fmt(s.error), s.method, "—" if s.probe is None else str(s.probe)]
                    + [fmt(s.margin), fmt(s.gain)]
                    for s in search.sensitivity[:10]
                ],
            )
        if search.fallback_order:
            lines += [
                f"fp32 fallback order (from candidate {search.fallback_base}; probed nodes by measured gain, "
                "then local sensitivity): " + ", ".join(f"`{n}`" for n in search.fallback_order[:10]),
                "",
            ]
    return lines


def _serving_section(result: ConvertResult) -> list[str]:
    """The tune-session pass's choice and every candidate it timed against the default."""
    serving = result.serving
    if serving is None:
        return []
    shape = f"batch {serving.batch_size}" + (f" × seq {serving.sequence_length}" if serving.sequence_length else "")
    lines = [
        "## Serving configuration (session.json)",
        "",
        f"{serving_summary(serving)}. Timed at {shape} against the default session in alternating "
        f"rounds, within the run's {serving.threads_budget}-thread budget; validation and the speed "
        "gates used these settings.",
        "",
    ]
    return lines + _table(SERVING_COLUMNS, serving_rows(serving))


def _workload_lines(sp: SpeedReport) -> list[str]:
    """The "Real workloads" section: real-length throughput, the batch-size scan, peak memory."""
    lines = ["### Real workloads", ""]
    if sp.real_length:
        lines += [
            "Throughput over the real validation batches, each padded to its own longest example "
            "(samples/s; the interval is a bootstrap over rounds of the ratio).",
            "",
        ]
        lines += _table(
            ["batch", "padding", "batches", "samples", "mean length", "source", "artifact", "ratio", "95 % interval"],
            [
                [
                    str(r.batch_size),
                    r.padding,
                    str(r.batches),
                    str(r.samples),
                    fmt(r.mean_length, 1) if r.mean_length is not None else "—",
                    f"{r.source_throughput:.1f}",
                    f"{r.artifact_throughput:.1f}",
                    f"{r.artifact_throughput / r.source_throughput:.2f}×",
                    f"[{r.estimate.ci_low:.2f}, {r.estimate.ci_high:.2f}]" if r.estimate else "—",
                ]
                for r in sp.real_length
            ],
        )
    scan = sp.batch_scan
    if scan and scan.points:
        curve = ", ".join(f"{p.batch_size}: {p.latency.throughput:.1f}" for p in scan.points)
        lines += [
            f"Batch-size scan of the artifact (seq {scan.sequence_length or '—'}; samples/s): {curve}. "
            f"Best batch size: **{scan.best_batch_size}** ({scan.best_throughput:.1f} samples/s)."
            + (f" {scan.stopped}." if scan.stopped else ""),
            "",
        ]
    for side, record in sp.peak_memory.items():
        peak = f"{record.peak_mb:.0f} MB" if record.peak_mb is not None else f"unknown ({record.error})"
        base = f", {record.baseline_mb:.0f} MB after imports" if record.baseline_mb is not None else ""
        lines += [f"- peak memory of the {side}'s own process: {peak}{base} — {record.scope}"]
    return [*lines, ""] if len(lines) > 2 else []


def _interval(shape) -> str:
    """``[low, high]`` of a shape's speed-up interval, or ``—`` without one; a contended shape's
    is followed by :data:`~optkit.records.manifest.CONTENDED_MARK`."""
    est = shape.estimate
    text = f"[{est.ci_low:.2f}, {est.ci_high:.2f}]" if est else "—"
    return f"{text} ({CONTENDED_MARK})" if shape.contended else text


def _spread(shape) -> str:
    """The larger round-to-round CV of the two runners, as a percentage."""
    return f"{max(shape.noise.cv_source, shape.noise.cv_artifact):.0%}" if shape.noise else "—"


def _others(shape) -> str:
    """Other processes' average CPU use while the shape was timed, in cores."""
    if shape.noise is None or shape.noise.others_cores is None:
        return "—"
    return f"{shape.noise.others_cores:.2f} cores"


def _details(step: StepRecord) -> str:
    if step.skipped:
        return f"skipped: {step.skipped}"
    parts = []
    for key, value in step.details.items():
        if value in (None, [], {}):
            continue
        if isinstance(value, float):
            value = fmt(value)
        parts.append(f"{key}={value}")
    return "; ".join(parts)[:300]
