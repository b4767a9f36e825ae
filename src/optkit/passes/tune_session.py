"""``tune-session``: choose the ONNX Runtime CPU session settings the artifact is served with.

A pass rather than a ``runtime:`` recipe section because it is a step with inputs (the final
model, the validation inputs, the thread budget), a measured outcome and a report entry, like the
other searching passes; it leaves the model unchanged and returns the chosen settings in
:attr:`~optkit.pass_context.PassOutcome.serving`, and the recipe requires it to be the last pass
(a later pass would change the model the settings were measured on).

Search (bounded and deterministic for the same timings): **one factor at a time** from optkit's
default session (``runtime.threads`` intra-op threads, sequential, ORT_ENABLE_ALL, spinning on,
CPU arena on), in this fixed order, each factor only when listed in ``factors``:

* ``intra_op_threads``: 1, 2, 4, … below ``runtime.threads`` (never more: the source framework
  runs with ``runtime.threads`` and the side-by-side comparison stays fair);
* ``execution_mode``: parallel with ``inter_op_num_threads`` 2 and ``runtime.threads // 2``
  intra-op threads (intra × inter ≤ ``runtime.threads``; 1 × 1 when the budget is 1 thread);
* ``graph_optimization_level``: basic, extended;
* ``spinning``: ``session.intra_op.allow_spinning`` = 0;
* ``memory_arena``: ``enable_cpu_mem_arena`` off.

Each candidate is timed against the default with the benchmark's protocol
(:func:`~optkit.validation.speed.measure_shape`: alternating blocks of calls, at least ``rounds``
rounds, more up to ``max_rounds`` while the interval straddles 1), giving default p50 / candidate
p50 with its 95 % bootstrap interval (:func:`~optkit.validation.stats.speedup_interval`). A
candidate can replace the default only when its whole interval is above 1; among those, the one
with the highest lower bound wins (the earliest in the order above on a tie). Otherwise the
default is kept: "no setting beat the default". A winner timed while other processes used more than
:data:`~optkit.validation.noise.OTHERS_CORES_WARN` cores is not adopted either (unless
``on_busy_machine: use``): under load fewer threads win (measured: 1 thread 1.58× [1.34, 2.71]
over 2 on the NER sample with 1.75 cores taken by neighbours), and the artifact would then be
served single-threaded on a quiet machine. The whole search stops at ``budget_s`` seconds;
candidates not reached are recorded as not timed.

Olive's ``OrtSessionParamsTuning`` pass searches a similar space (it keeps the fastest mean
latency); this one is judged by confidence intervals, as optkit's speed gates are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from optkit.pass_configs.tune_session import TuneSessionPass
from optkit.pass_context import PassContext, PassOutcome
from optkit.records.figures import Figure
from optkit.records.session import GainRecord, ServingConfig, SessionCandidate, SessionSettings
from optkit.reporting.serving import gain_text
from optkit.runners.base import Feeds, Runner
from optkit.runners.ort_runner import OrtRunner
from optkit.validation.noise import OTHERS_CORES_WARN, NoiseMonitor
from optkit.validation.speed import TimingPlan, measure_shape

NO_WIN = "no setting beat the default (no candidate's 95 % interval was wholly above 1)"

RunnerFactory = Callable[[SessionSettings], Runner]
MonitorFactory = Callable[[Callable[[], float]], NoiseMonitor]


def candidates(default: SessionSettings, factors: Sequence[str], threads: int) -> list[tuple[str, SessionSettings]]:
    """The candidates, one factor changed from ``default`` each, in the documented order.

    Args:
        default: the default session (``SessionSettings.default(threads)``).
        factors: the factors to vary (``TuneSessionPass.factors``).
        threads: the run's thread budget (``runtime.threads``); no candidate uses more.

    Returns:
        ``[(change, settings)]``, e.g. ``("intra_op_num_threads=1", ...)``.
    """
    out: list[tuple[str, SessionSettings]] = []

    def vary(change: str, **fields: object) -> None:
        out.append((change, default.model_copy(update=fields)))

    if "intra_op_threads" in factors:
        count = 1
        while count < threads:
            vary(f"intra_op_num_threads={count}", intra_op_num_threads=count)
            count *= 2
    if "execution_mode" in factors:
        inter = 2 if threads >= 2 else 1
        intra = max(1, threads // inter)
        vary(
            f"parallel, intra {intra} × inter {inter}",
            execution_mode="parallel",
            intra_op_num_threads=intra,
            inter_op_num_threads=inter,
        )
    if "graph_optimization_level" in factors:
        for level in ("basic", "extended"):
            vary(f"graph_optimization_level={level}", graph_optimization_level=level)
    if "spinning" in factors:
        vary("allow_spinning=0", allow_spinning=False)
    if "memory_arena" in factors:
        vary("enable_cpu_mem_arena=0", enable_cpu_mem_arena=False)
    return [(c, s) for c, s in out if s.threads_used <= threads]


def choose(tried: Sequence[SessionCandidate]) -> int | None:
    """The index of the winning candidate, or None to keep the default.

    A candidate can win only when its whole interval is above 1 (``gain.ci_low > 1``); the highest
    lower bound wins, the earliest on a tie. Pure: the same gains always give the same choice.
    """
    best: int | None = None
    best_low = 1.0
    for index, candidate in enumerate(tried):
        low = candidate.gain.ci_low if candidate.gain is not None else None
        if low is not None and low > best_low:
            best, best_low = index, low
    return best


def search(
    make_runner: RunnerFactory,
    feeds: Feeds,
    config: TuneSessionPass,
    threads: int,
    batch_size: int,
    sequence_length: int | None,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] = lambda message: None,
    monitor: MonitorFactory = NoiseMonitor,
) -> tuple[ServingConfig, list[str]]:
    """Time every candidate against the default and choose (see the module docstring).

    Args:
        make_runner: ``(settings) -> Runner`` (an :class:`OrtRunner` on the model; fakes in tests).
        feeds: the inputs every candidate is timed on.
        config: the pass config (factors, timing protocol, ``budget_s``).
        threads: the run's thread budget (``runtime.threads``).
        batch_size / sequence_length: the shape of ``feeds``, for the record.
        clock: seconds, for the budget (injectable for tests).
        progress: one line per candidate for the user.
        monitor: ``(clock) -> NoiseMonitor`` for each candidate's timing window (fakes in tests).

    Returns:
        The :class:`ServingConfig` and the busy-machine warnings of the timing.

    Raises:
        Whatever the default runner raises on activation (the caller maps it); a candidate that
        fails to load is recorded and skipped.
    """
    default = SessionSettings.default(threads)
    start = clock()
    reference = make_runner(default)
    reference.activate()
    tried: list[SessionCandidate] = []
    warnings: list[str] = []
    try:
        for change, settings in candidates(default, config.factors, threads):
            left = config.budget_s - (clock() - start)
            if left <= 0:
                tried.append(SessionCandidate(change=change, settings=settings, note="not timed: budget_s ran out"))
                continue
            timed, noise = _time_candidate(
                reference,
                make_runner,
                (change, settings),
                (feeds, batch_size, sequence_length),
                config,
                left,
                monitor(clock),
            )
            tried.append(timed)
            warnings += noise
            gain = timed.gain
            progress(f"session {change}: " + (gain_text(gain) if gain is not None else timed.note))
    finally:
        reference.deactivate()
    index = choose(tried)
    reason = NO_WIN
    busy = tried[index].others_cores if index is not None else None
    if index is not None and busy is not None and busy > OTHERS_CORES_WARN and config.on_busy_machine == "keep-default":
        won = tried[index]
        reason = (
            f"{won.change} beat the default ({gain_text(won.gain)}) but other processes used {busy:.2f} cores "
            f"while it was timed: a setting that wins under load may lose when served; default kept "
            "(on_busy_machine: use accepts it)"
        )
        warnings.append(f"tune-session: {reason}")
        index = None
    if index is None:
        serving = ServingConfig(
            settings=default,
            tuned=False,
            change="default",
            reason=reason,
            threads_budget=threads,
            batch_size=batch_size,
            sequence_length=sequence_length,
            candidates=tried,
        )
    else:
        won = tried[index]
        gain = won.gain
        assert gain is not None  # choose() picks timed candidates only
        serving = ServingConfig(
            settings=won.settings,
            tuned=True,
            change=won.change,
            gain=gain,
            reason=f"{won.change} beat the default: {gain_text(gain)}",
            threads_budget=threads,
            batch_size=batch_size,
            sequence_length=sequence_length,
            candidates=tried,
        )
    return serving, list(dict.fromkeys(warnings))


def _time_candidate(
    reference: Runner,
    make_runner: RunnerFactory,
    candidate: tuple[str, SessionSettings],
    shape: tuple[Feeds, int, int | None],
    config: TuneSessionPass,
    left_s: float,
    monitor: NoiseMonitor,
) -> tuple[SessionCandidate, list[str]]:
    """One candidate against the default runner: loaded, timed in rounds, released; returns it with
    the busy-machine warnings of its timing. ``candidate`` = (change, settings); ``shape`` = (feeds,
    batch size, sequence length)."""
    change, settings = candidate
    feeds, batch_size, sequence_length = shape
    runner = make_runner(settings)
    try:
        runner.activate()
    except Exception as exc:  # onnxruntime raises its own types for options a build refuses
        note = f"failed to load: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
        return SessionCandidate(change=change, settings=settings, note=note), []
    try:
        plan = TimingPlan(config.warmup, config.iterations, config.rounds, config.max_rounds, left_s)
        timed = measure_shape(
            reference,
            runner,
            feeds,
            batch_size,
            sequence_length,
            plan,
            thresholds=(1.0,),
            clock=monitor.clock,
            monitor=monitor,
        )
    finally:
        runner.deactivate()
    est = timed.estimate
    gain = (
        GainRecord(
            ratio=est.ratio, ci_low=est.ci_low, ci_high=est.ci_high, confidence=est.confidence, rounds=est.rounds
        )
        if est is not None
        else None
    )
    noise = timed.noise
    others = noise.others_cores if noise is not None else None
    warnings = [
        f"tune-session {change}: "
        + w.replace("the source's", "the default session's").replace("the artifact's", "the candidate's")
        for w in (noise.warnings if noise is not None else [])
    ]
    return SessionCandidate(change=change, settings=settings, gain=gain, others_cores=others), warnings


def _shape(feeds: Feeds, token_inputs: bool) -> tuple[int, int | None]:
    first = next(iter(feeds.values()))
    return int(first.shape[0]), (int(first.shape[1]) if token_inputs and first.ndim >= 2 else None)


def run(model_path: Path, config: TuneSessionPass, ctx: PassContext) -> PassOutcome:
    """Search the session settings of ``model_path`` (unchanged); the outcome's ``serving`` holds
    the choice.

    Inputs: real validation inputs at ``config.batch_size`` × ``config.sequence_length``; what is
    not set comes from the searches' gated shape (``ctx.evaluator.latency_feeds``: the first CPU
    speed gate's, else the first benchmarked shape), or batch 1 × 128 tokens without an evaluator.

    Raises:
        onnxruntime's exceptions when the model does not load with the default settings.
    """
    vset = ctx.validation
    token_inputs = bool(getattr(vset, "pad_values", None))
    gated: Feeds | None = ctx.evaluator.latency_feeds if ctx.evaluator is not None else None
    if gated is not None and config.batch_size is None and config.sequence_length is None:
        feeds = gated
    else:
        gate_batch, gate_seq = _shape(gated, token_inputs) if gated is not None else (1, 128)
        seq = (config.sequence_length or gate_seq) if token_inputs else None
        feeds = vset.shaped(config.batch_size or gate_batch, seq)
    batch, seq_len = _shape(feeds, token_inputs)
    serving, warnings = search(
        lambda settings: OrtRunner(model_path, ctx.threads, session=settings),
        feeds,
        config,
        ctx.threads,
        batch,
        seq_len,
        progress=ctx.progress,
    )
    details: dict[str, Figure] = {
        "settings": serving.settings.label(),
        "change": serving.change,
        "tuned": serving.tuned,
        "reason": serving.reason,
        "candidates_timed": sum(c.gain is not None for c in serving.candidates),
        "candidates": len(serving.candidates),
    }
    if serving.gain is not None:
        details["gain"] = serving.gain.ratio
        details["gain_ci"] = [serving.gain.ci_low, serving.gain.ci_high]
    return PassOutcome(model_path, details, warnings, serving=serving)
