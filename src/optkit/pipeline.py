"""``convert``: source → export → passes → validate (accuracy, speed) → gates → emit.

The CLI is a thin layer over :func:`run_request` (it builds one :class:`ConvertRequest`);
:func:`convert` is the same with keyword arguments. Everything the CLI shows comes from
:class:`ConvertResult`.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optkit import interrupts
from optkit.artifact.attestation import write_attestation
from optkit.artifact.emit import check_output, publish, staging
from optkit.artifact.manifest import FileEntry, Manifest, build_manifest, file_entries, seal
from optkit.artifact.signing import check_sign_key, sign_artifact
from optkit.errors import DataError, OptkitError, PassError, SourceModelError
from optkit.onnx_io import load_onnx, save_onnx
from optkit.pass_context import PassContext, PassOutcome
from optkit.paths import require_regular
from optkit.recipe import AccuracyGate, Recipe, apply_overrides, load_recipe
from optkit.records.figures import Figure
from optkit.records.manifest import DataRecord, SandboxSection, SourceRecord
from optkit.records.session import ServingConfig
from optkit.registry import PASSES, detect_framework, resolve
from optkit.request import ConvertRequest
from optkit.results import ConvertResult, Event, EventProgress, NullProgress, Progress, StepRecord
from optkit.runners.ort_runner import OrtRunner, available_devices
from optkit.sandbox.client import SandboxMode, SourceWorker
from optkit.sandbox.source import WorkerSource, load_source
from optkit.search.evaluator import CandidateEvaluator
from optkit.sources.hf_hub import resolve_source
from optkit.sources.torch_model_code import ModelCode, resolve_model_code
from optkit.validation import gates as gate_eval
from optkit.validation.data import ValidationSet, load_validation_set
from optkit.validation.export_check import check_export
from optkit.validation.padding import PaddedReference, reference_outputs
from optkit.validation.shape_check import ShapeCheck, check_export_shapes, check_final_shapes, probe_source
from optkit.validation.speed import (
    SpeedReport,
    TimingPlan,
    activate_measured,
    benchmark,
    size_on_disk_mb,
    start_peak_memory,
    time_workloads,
)
from optkit.validation.task_gates import available_metrics, resolve_gates
from optkit.validation.validate_model import finite_reference, validate_model


def convert(
    source: str | Path,
    recipe: str | Recipe = "fp32",
    output: str | Path | None = None,
    *,
    data: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    framework: str = "auto",
    trust_pickle: bool = False,
    trust_remote_code: bool = False,
    trust_model_code: bool = False,
    trust_skops_types: tuple[str, ...] | list[str] = (),
    sandbox: SandboxMode = "auto",
    overwrite: bool = False,
    strict: bool = False,
    progress: Progress | None = None,
    on_event: Event | None = None,
    before_publish: Callable[[ConvertResult], None] | None = None,
    sign_key: str | Path | None = None,
    sign_keyless: bool = False,
    model_code: str | None = None,
) -> ConvertResult:
    """Convert a model with a recipe, validate it against its source framework, and emit the
    approved artifact (``model.onnx``, ``manifest.json``, ``report.md``, ``report.html``) when every gate holds.

    The recipe is resolved here (loaded once, with ``overrides`` and ``data``), then the
    :class:`~optkit.request.ConvertRequest` goes to :func:`run_request`.

    Args:
        source: the model file or folder (``.pt`` TorchScript, ``.pt2``, HF folder, ...).
        recipe: a built-in name, a YAML path, or a :class:`~optkit.recipe.Recipe`.
        output: artifact folder; default ``optkit-out/<source stem>-<recipe name>``.
        data: validation data path (overrides ``validation.data``).
        overrides: dotted recipe keys → values, e.g. ``{"export.opset": 18}`` or
            ``{"passes.quantize-dynamic.search_budget_s": 30}`` (a pass by index or by type).
        framework: ``"auto"`` or a registry name (``"torch"``).
        trust_pickle: allow loading pickles (runs code from the file, inside the confinement).
        trust_remote_code: let a Hugging Face folder's own code (``auto_map``) run, confined.
        trust_model_code: skip the static scan of the model file (dangerous; never skips the
            confinement).
        trust_skops_types: classes from outside scikit-learn a ``.skops`` source may hold
            (``--trust-skops-type``: exact dotted names or package prefixes such as ``lightgbm``;
            classes only, never functions).
        sandbox: ``"auto"`` confines the source model's worker where the kernel has Landlock,
            ``"require"`` fails where it has not, ``"off"`` runs it unconfined (recorded). ``strict``
            implies ``"require"``.
        overwrite: replace an existing output folder (only an optkit artifact or an empty folder).
        strict: a skipped gate fails the run, so does validation on random inputs or an
            unconfined source model.
        progress: told of each step as it starts and ends, each benchmarked shape and each line
            from inside a step (see :class:`~optkit.results.Progress`); default none.
        on_event: deprecated (one release): an old ``(event, payload)`` callback, used through
            :class:`~optkit.results.EventProgress` when ``progress`` is not given.
        before_publish: called with the final result (approved or not) before the artifact is
            published; if it raises, nothing is published (the CLI writes --junit-xml here).
        sign_key: PEM EC private key: sign the artifact (``model.sig``, see :mod:`optkit.artifact.signing`).
        sign_keyless: sign with Sigstore instead (online).
        model_code: ``module:factory`` for a PyTorch state dict source: the user's code that builds
            the ``nn.Module`` (see :mod:`optkit.sources.torch_model_code`). ``source`` may also be a
            Hugging Face model id (``org/name``), resolved from the local hub cache.

    Returns:
        The :class:`ConvertResult`; ``approved`` tells whether the artifact was emitted.

    Raises:
        OptkitError: bad input (recipe, source, data, output) or a failing export/pass.
    """
    overrides = dict(overrides or {})
    if data is not None:
        overrides["validation.data"] = str(data)  # a Path is fine too
    if isinstance(recipe, Recipe):
        resolved = apply_overrides(recipe, overrides) if overrides else recipe
    else:
        resolved = load_recipe(recipe, overrides)
    request = ConvertRequest(
        source=Path(source),
        recipe=resolved,
        output=Path(output) if output else None,
        framework=framework,
        trust_pickle=trust_pickle,
        trust_remote_code=trust_remote_code,
        trust_model_code=trust_model_code,
        trust_skops_types=tuple(trust_skops_types),
        sandbox=sandbox,
        overwrite=overwrite,
        strict=strict,
        sign_key=Path(sign_key) if sign_key is not None else None,
        sign_keyless=sign_keyless,
        model_code=model_code,
    )
    return run_request(request, progress, before_publish, on_event=on_event)


def run_request(
    request: ConvertRequest,
    progress: Progress | None = None,
    before_publish: Callable[[ConvertResult], None] | None = None,
    *,
    on_event: Event | None = None,
) -> ConvertResult:
    """Run one conversion as :func:`convert` does, from a request whose recipe is already resolved
    (what the CLI calls: it loads the recipe once, with every override).

    Args:
        request: the :class:`~optkit.request.ConvertRequest`.
        progress / before_publish / on_event: as for :func:`convert`.

    Returns:
        The :class:`ConvertResult`.

    Raises:
        OptkitError: as for :func:`convert` (the source, data or output refused before any slow step).
    """
    reporter: Progress = progress or (EventProgress(on_event) if on_event is not None else NullProgress())
    resolved = request.recipe
    src_path = require_regular(resolve_source(request.source), "source model", SourceModelError, allow_dir=True)
    if resolved.validation.data:  # before the slow source load
        require_regular(resolved.validation.data, "validation data", DataError, allow_dir=True)
    out = request.output_dir
    inputs = [src_path, resolved.validation.data, *[getattr(p, "calibration_data", None) for p in resolved.passes]]
    check_output(out, request.overwrite, protect=[Path(p) for p in inputs if p])
    check_sign_key(request.sign_key, request.sign_keyless)
    workdir = Path(tempfile.mkdtemp(prefix="optkit-"))
    code = resolve_model_code(request.model_code) if request.model_code else None
    options = _Options(before_publish, request.sign_key, request.sign_keyless, code)
    try:
        return _Run(request, src_path, out, workdir, options, reporter).run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class _Options:
    """How the approved artifact is published (the request's signing choices and the caller's hook)."""

    before_publish: Callable[[ConvertResult], None] | None
    sign_key: str | Path | None
    sign_keyless: bool
    model_code: ModelCode | None = None


@dataclass(frozen=True)
class _Footprint:
    """What loading each model cost, for the speed report.

    Attributes:
        source_load_s: the worker's load of the source model plus its runner's activation, seconds.
        source_rss_mb / artifact_rss_mb: resident memory growth when each runner was activated, MB.
    """

    source_load_s: float
    source_rss_mb: float
    artifact_rss_mb: float


class _Run:
    """One conversion; each method is one pipeline step and returns what the later steps need."""

    def __init__(
        self, request: ConvertRequest, source: Path, out: Path, workdir: Path, options: _Options, progress: Progress
    ) -> None:
        self.request, self.recipe, self.source_path = request, request.recipe, source
        self.out, self.workdir = out, workdir
        self.options, self.overwrite, self.strict = options, request.overwrite, request.strict
        self.progress = progress
        self.steps: list[StepRecord] = []
        self.threads = request.recipe.runtime.threads
        self.shape_check = ShapeCheck()  # the export step's probes, reused for the final model
        self.serving: ServingConfig | None = None  # the tune-session pass's choice, if it ran

    def _step(self, name: str, fn: Callable[[], tuple[Any, PassOutcome | None]]) -> Any:
        return self._timed(name, fn)[0]

    def _timed(self, name: str, fn: Callable[[], tuple[Any, PassOutcome | None]]) -> tuple[Any, StepRecord]:
        """Run one step: ``fn`` returns its value and, for an export or a pass, its outcome."""
        interrupts.check()
        self.progress.step_started(name)
        start = time.perf_counter()
        value, outcome = fn()
        interrupts.check()
        record = StepRecord(name, time.perf_counter() - start)
        if outcome is not None:
            record.details, record.warnings, record.skipped = outcome.details, outcome.warnings, outcome.skipped
            record.search = outcome.search
        self.steps.append(record)
        self.progress.step_done(record)
        return value, record

    def run(self) -> ConvertResult:
        requested = self.request.framework
        framework = detect_framework(
            self.source_path, requested if requested != "auto" else self.recipe.source.framework
        )
        self.worker: SourceWorker | None = None  # an attribute only so that it is closed below
        try:
            source, loaded = self._timed(f"load source ({framework.name})", lambda: self._load(framework))
            return self._run(source, loaded.seconds)
        except BaseException as exc:
            if self.worker is not None and not isinstance(exc, Exception):
                self.worker.kill()  # Ctrl-C, SIGTERM: do not wait for the worker to finish its request
            raise
        finally:
            if self.worker is not None:
                self.worker.close()

    def _load(self, framework) -> tuple[WorkerSource, PassOutcome]:
        """Start the confined worker, scan and load the source in it."""
        request = self.request
        code = self.options.model_code
        reads = [self.source_path, *(code.read_paths if code else [])]
        self.worker = SourceWorker(self.workdir, reads, request.sandbox_mode)
        source = load_source(
            self.worker,
            framework,
            self.source_path,
            self.threads,
            trust_pickle=request.trust_pickle,
            trust_remote_code=request.trust_remote_code,
            trust_model_code=request.trust_model_code,
            trust_skops_types=request.trust_skops_types,
            model_code=code.to_dict() if code else None,
        )
        record = self.worker.sandbox
        warnings = (
            []
            if record.status == "confined"
            else [
                f"the source model ran unconfined (sandbox {record.status}: {record.details.get('reason', '')}); "
                "--strict or --require-sandbox refuse this"
            ]
        )
        if source.scan.get("skipped"):
            warnings.append("the static scan of the model file was skipped (--trust-model-code)")
        target = self.request.recipe.target
        if target is not None and not self.request.on_target:
            warnings.append(
                f"the recipe names a target ({target.ray_resources()}) but this run was not placed on it: every "
                "figure was measured on this machine; `optkit batch --ray` runs it on a node that has the target"
            )
        details: dict[str, Figure] = {"sandbox": record.to_dict(), "scan": source.scan}
        if code:
            details["model_code"] = {"path": str(code.file), "factory": code.factory, "sha256": code.sha256}
        return source, PassOutcome(self.source_path, details, warnings)

    def _run(self, source: WorkerSource, source_load_s: float) -> ConvertResult:
        """The steps after the source load, in order; each one's value feeds the next."""
        info = source.info
        cfg = self.recipe.validation
        vset = self._step(
            "load validation data",
            lambda: (load_validation_set(cfg.data, info, cfg.max_samples, cfg.sequence_length), None),
        )
        src_runner = source.runner(self.threads)
        src_rss = self._activate_source(src_runner, vset)
        src_out, gates = self._step(
            f"reference run ({src_runner.name}, {vset.size} samples)",
            lambda: self._reference(src_runner, vset, info),
        )
        model_path = self._step("export", lambda: self._export(source, vset, src_runner))
        evaluator = self._evaluator(src_out, vset, info, gates)
        for index, pass_cfg in enumerate(self.recipe.passes):
            ctx = PassContext(
                self.workdir,
                info,
                index + 1,
                self.recipe.artifact.external_data_threshold_mb,
                vset,
                evaluator,
                self.threads,
                self.progress.message,
            )
            run_pass = resolve(PASSES[pass_cfg.type])
            model_path = self._step(pass_cfg.type, functools.partial(self._pass, run_pass, model_path, pass_cfg, ctx))
        # the artifact as it will be served: the tune-session pass's settings, else the default
        art_runner = OrtRunner(model_path, self.threads, session=self.serving.settings if self.serving else None)
        art_rss = self._activate_artifact(art_runner, vset)
        self._step("check other shapes (final model)", lambda: self._final_shapes(art_runner, vset, model_path))
        checked = self._step(
            "validate accuracy",
            lambda: self._validate(art_runner, src_out, vset, info, model_path, gates),
        )
        speed = self._step(
            "benchmark speed",
            lambda: self._benchmark(
                source,
                src_runner,
                art_runner,
                vset,
                _Footprint(source_load_s + src_runner.load_seconds, src_rss, art_rss),
            ),
        )
        gates = checked.gates + gate_eval.evaluate_speed(self.recipe.benchmark.gates, speed)
        return self._finish(source, vset, model_path, art_runner, checked.accuracy, speed, gates)

    def _activate_source(self, src_runner, vset: ValidationSet) -> float:
        """Activate the source runner on the first validation batch; returns its RSS growth (MB).

        Raises:
            DataError: the source model rejects the validation inputs.
        """
        try:
            return activate_measured(src_runner, vset.batches(self.recipe.validation.batch_size)[0])
        except OptkitError:
            raise  # the worker named it already (a sandbox denial, a crash)
        except Exception as exc:  # each framework raises its own types for inputs it rejects
            shapes = ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in vset.feeds.items())
            raise DataError(
                f"the source model rejected the validation inputs ({shapes}): "
                f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}",
                "give one array per model input with the model's rank and dtype",
            ) from exc

    def _activate_artifact(self, art_runner: OrtRunner, vset: ValidationSet) -> float:
        """Activate the final model in ONNX Runtime; returns its RSS growth (MB).

        Raises:
            PassError: the final model does not run.
        """
        try:
            return activate_measured(art_runner, vset.batches(self.recipe.validation.batch_size)[0])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise PassError(
                f"the final model does not run in ONNX Runtime: {str(exc).splitlines()[0][:300]}",
                "the last pass produced an invalid model; remove it or change its settings",
            ) from exc

    def _evaluator(self, src_out, vset: ValidationSet, info, gates: list[AccuracyGate]) -> CandidateEvaluator:
        """Scores search candidates with the recipe's accuracy gates as resolved for the task
        (``gates``), timed at the first CPU speed gate's shape (or the first benchmarked shape)."""
        bench = self.recipe.benchmark
        gate = next((g for g in bench.gates if g.device == "cpu"), None)
        batch = gate.batch_size if gate else bench.batch_sizes[0]
        seq = gate.sequence_length if gate and gate.sequence_length else bench.sequence_lengths[0]
        return CandidateEvaluator(
            src_out,
            vset,
            info,
            gates,
            self.recipe.validation.batch_size,
            self.threads,
            vset.shaped(batch, seq if vset.pad_values else None),
        )

    def _reference(
        self, src_runner, vset: ValidationSet, info
    ) -> tuple[tuple[PaddedReference, list[AccuracyGate]], PassOutcome]:
        """The source's outputs on every sample, under each padding the recipe validates
        (:func:`~optkit.validation.padding.reference_outputs`), checked to be finite; and the recipe's
        accuracy gates resolved for the model's task (:func:`~optkit.validation.task_gates.resolve_gates`:
        a fidelity gate that cannot be evaluated is replaced by the task's own, warned).

        Raises:
            SourceModelError: the source's own outputs hold NaN/Inf.
            RecipeError: no fidelity gate can be evaluated for this model (before any export).
        """
        cfg = self.recipe.validation
        reference = reference_outputs(src_runner, vset, cfg.batch_size, cfg.padding)
        for outputs in reference.outputs.values():
            finite_reference(outputs, vset.feeds.get("attention_mask"))
        first = reference.outputs[reference.paddings[0]]
        resolved = resolve_gates(
            cfg.gates, available_metrics(first, vset, info), info.task, f"recipe {self.recipe.name}"
        )
        return (reference, resolved.gates), PassOutcome(self.source_path, {}, resolved.warnings)

    def _export(self, source: WorkerSource, vset: ValidationSet, src_runner) -> tuple[Path, PassOutcome]:
        """Export, then check the export against the source on one real batch
        (:func:`~optkit.validation.export_check.check_export`) and at two other batch sizes and two
        other sequence lengths (:mod:`~optkit.validation.shape_check`)."""
        cfg = self.recipe.export
        example = vset.batches(2)[0]
        outcome = source.export(
            example,
            cfg,
            self.workdir / "00-export.onnx",
            self.recipe.artifact.external_data_threshold_mb,
        )
        tolerances = (cfg.check_atol, cfg.check_rtol, self.threads)
        # first at the traced shape itself: a failure there is a mistrace, not a baked dimension
        at_export = check_export(outcome.model_path, src_runner, example, *tolerances, source.traits)
        self.shape_check = probe_source(src_runner, vset, source.info, example)
        check_export_shapes(outcome.model_path, self.shape_check, vset, *tolerances)
        outcome.details["shapes_checked"] = self.shape_check.details()
        at_batch = check_export(
            outcome.model_path,
            src_runner,
            vset.batches(self.recipe.validation.batch_size)[0],
            *tolerances,
            source.traits,
        )
        outcome.details["export_check_max_abs_error"] = max(at_export, at_batch)
        return outcome.model_path, outcome

    def _final_shapes(self, art_runner: OrtRunner, vset: ValidationSet, model_path: Path) -> tuple[None, PassOutcome]:
        """The final model at the export check's other shapes: it runs and gives the source's
        output shapes (:func:`~optkit.validation.shape_check.check_final_shapes`)."""
        check_final_shapes(art_runner, self.shape_check, vset)
        return None, PassOutcome(model_path, self.shape_check.details())

    def _validate(self, art_runner: OrtRunner, reference: PaddedReference, vset, info, model_path: Path, gates):
        """Accuracy of the final model under each padding (:func:`validate_model`), gated by the
        resolved accuracy ``gates``; the step records the paddings and, with both, each padding's metrics."""
        cfg = self.recipe.validation
        checked = validate_model(art_runner, reference, vset, info, gates, cfg.batch_size)
        details: dict[str, Figure] = {"padding": cfg.padding, "paddings_validated": list(reference.paddings)}
        if reference.note:
            details["padding_note"] = reference.note
        if checked.by_padding:
            details["metrics_by_padding"] = checked.by_padding
        return checked, PassOutcome(model_path, details)

    def _pass(self, run_pass, path: Path, config, ctx: PassContext) -> tuple[Path, PassOutcome]:
        outcome = run_pass(path, config, ctx)
        if outcome.serving is not None:
            self.serving = outcome.serving
        return outcome.model_path, outcome

    def _benchmark(
        self, source, src_runner, art_runner, vset: ValidationSet, footprint: _Footprint
    ) -> tuple[SpeedReport, PassOutcome]:
        """Time every shape in alternating rounds (:func:`~optkit.validation.speed.benchmark`), then
        the real workloads (:func:`~optkit.validation.speed.time_workloads`: real-length throughput,
        the batch-size scan, each runner's own peak memory); the busy-machine warnings of every
        shape and workload become the step's warnings."""
        bench = self.recipe.benchmark
        report = SpeedReport(self.threads, bench.warmup, bench.iterations)
        report.rounds, report.max_rounds, report.budget_s = bench.rounds, bench.max_rounds, bench.budget_s
        plan = TimingPlan(bench.warmup, bench.iterations, bench.rounds, bench.max_rounds, bench.budget_s)
        report.load_seconds = {
            "source": footprint.source_load_s,
            "artifact": art_runner.load_seconds,
        }
        report.rss_growth_mb = {"source": footprint.source_rss_mb, "artifact": footprint.artifact_rss_mb}
        model = art_runner.model_path
        report.size_mb = {
            "source": size_on_disk_mb(self.source_path),
            "artifact": size_on_disk_mb(model, model.with_name(model.name + ".data")),
        }
        on_shape = self.progress.shape_measured
        args = (vset, bench.batch_sizes, bench.sequence_lengths, plan, bench.gates, on_shape)
        reset_done = start_peak_memory(src_runner)
        started = time.perf_counter()
        report.shapes += benchmark(src_runner, art_runner, *args)
        for device in sorted({g.device for g in bench.gates} - {"cpu"}):
            reason = self._device_missing(source, device)
            if reason:
                report.skipped_devices[device] = reason
                continue
            dev_src, dev_art = (
                source.runner(self.threads, device),
                OrtRunner(art_runner.model_path, self.threads, device),
            )
            report.shapes += benchmark(dev_src, dev_art, *args)
        rounds = {}
        for shape in report.shapes:
            where = f"{shape.device} batch {shape.batch_size}" + (
                f" × seq {shape.sequence_length}" if shape.sequence_length else ""
            )
            rounds[where] = shape.rounds
            report.warnings += [f"{where}: {w}" for w in (shape.noise.warnings if shape.noise else [])]
        message = self.progress.message
        shapes_s = time.perf_counter() - started
        time_workloads(report, src_runner, art_runner, vset, bench, self.workdir, reset_done, message)
        seconds = {"fixed shapes": round(shapes_s, 2), **report.workload_seconds}  # what each part cost (s)
        return report, PassOutcome(model, {"rounds": rounds, "seconds": seconds}, list(report.warnings))

    @staticmethod
    def _device_missing(source: WorkerSource, device: str) -> str | None:
        if device not in available_devices():
            return (
                f"no {device.upper()} execution provider in this onnxruntime (providers: "
                f"{', '.join(available_devices())}); a {device} speed claim needs a {device} machine"
            )
        return source.device_missing(device)

    def _finish(self, source, vset, model_path, art_runner, accuracy, speed, gates) -> ConvertResult:
        worker = self.worker
        assert worker is not None  # started by _load, before any step
        warnings = [w for s in self.steps for w in s.warnings]
        if not vset.is_real:
            warnings.append(f"validated on generated random inputs ({vset.origin}), not real data: pass --data")
        result = ConvertResult(
            approved=False,
            strict=self.strict,
            recipe=self.recipe,
            source=SourceRecord(
                path=str(self.source_path),
                framework=source.framework,
                kind=source.kind,
                sha256=source.sha256(),
                task=source.info.task,
                versions=source.framework_versions(),
            ),
            data=DataRecord(
                kind=vset.kind,
                origin=vset.origin,
                sha256=vset.sha256,
                samples=vset.size,
                real=vset.is_real,
                truncated_words=vset.truncated_words,
            ),
            steps=self.steps,
            accuracy=accuracy,
            speed=speed,
            gates=gates,
            warnings=warnings,
            evidence="real-data" if vset.is_real else "random-inputs",
            sandbox=SandboxSection.model_validate(worker.sandbox.to_dict()),
            serving=self.serving,
        )
        model = load_onnx(model_path)  # once: the manifest and the emitted file both read it
        result.gates += gate_eval.evaluate_int8_compute(self.recipe.passes, model)
        result.approved = not result.rejections
        result.manifest = self._manifest(result, model, art_runner, {})
        if result.approved:
            self._emit(result, model, art_runner)
        elif self.options.before_publish is not None:
            self.options.before_publish(result)
        return result

    def _manifest(self, result: ConvertResult, model, art_runner, files: dict[str, FileEntry]) -> Manifest:
        return build_manifest(result, model, art_runner.provider, files)

    def _emit(self, result: ConvertResult, model, art_runner) -> None:
        from optkit.artifact.report import render_report
        from optkit.artifact.report_files import write_report_html
        from optkit.artifact.serving import write_serving

        with staging(self.out) as tmp:
            written = save_onnx(model, tmp / "model.onnx", self.recipe.artifact.external_data_threshold_mb)
            (tmp / "report.md").write_text(render_report(result))
            names = [p.name for p in written] + ["report.md"]
            if result.serving is not None:
                names.append(write_serving(tmp, result.serving))
            # the page shows the manifest as it is now: every file but itself and the attestation
            names.append(write_report_html(tmp, self._manifest(result, model, art_runner, file_entries(tmp, names))))
            names.append(write_attestation(tmp, self._manifest(result, model, art_runner, file_entries(tmp, names))))
            text = seal(self._manifest(result, model, art_runner, file_entries(tmp, names)))
            result.manifest = Manifest.model_validate_json(text)
            (tmp / "manifest.json").write_text(text)
            if self.options.sign_key is not None or self.options.sign_keyless:
                sign_artifact(
                    tmp,
                    Path(self.options.sign_key) if self.options.sign_key else None,
                    keyless=self.options.sign_keyless,
                )
            if self.options.before_publish is not None:
                self.options.before_publish(result)
            publish(tmp, self.out, self.overwrite)
        result.output_dir = self.out


__all__ = ["ConvertRequest", "ConvertResult", "Event", "Progress", "StepRecord", "convert", "run_request"]
