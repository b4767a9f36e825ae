"""``convert``: source → export → passes → validate (accuracy, speed) → gates → emit.

The CLI is a thin layer over :func:`convert`; everything it shows comes from :class:`ConvertResult`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
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
from optkit.artifact.environment import environment
from optkit.artifact.manifest import Manifest, file_entries, seal
from optkit.artifact.signing import check_sign_key, sign_artifact
from optkit.errors import DataError, ExportError, OptkitError, PassError, SourceModelError
from optkit.onnx_io import load_onnx, save_onnx
from optkit.pass_context import PassContext, PassOutcome
from optkit.paths import require_regular
from optkit.recipe import Recipe, apply_overrides, load_recipe
from optkit.registry import PASSES, detect_framework, resolve
from optkit.results import ConvertResult, Event, StepRecord
from optkit.runners.ort_runner import OrtRunner, available_devices
from optkit.sandbox.client import SandboxMode, SourceWorker
from optkit.sandbox.source import WorkerSource, load_source
from optkit.search.evaluator import CandidateEvaluator
from optkit.validation import gates as gate_eval
from optkit.validation.accuracy import AccuracyReport, compare, concat_outputs
from optkit.validation.data import ValidationSet, load_validation_set
from optkit.validation.outputs import check_close
from optkit.validation.speed import (
    SpeedReport,
    TimingPlan,
    activate_measured,
    benchmark,
    size_on_disk_mb,
)
from optkit.version import __version__


def convert(
    source: str | Path,
    recipe: str | Recipe = "fp32",
    output: str | Path | None = None,
    *,
    data: str | None = None,
    overrides: dict[str, Any] | None = None,
    framework: str = "auto",
    trust_pickle: bool = False,
    trust_remote_code: bool = False,
    trust_model_code: bool = False,
    sandbox: SandboxMode = "auto",
    overwrite: bool = False,
    strict: bool = False,
    on_event: Event | None = None,
    before_publish: Callable[[ConvertResult], None] | None = None,
    sign_key: str | Path | None = None,
    sign_keyless: bool = False,
) -> ConvertResult:
    """Convert a model with a recipe, validate it against its source framework, and emit the
    approved artifact (``model.onnx``, ``manifest.json``, ``report.md``) when every gate holds.

    Args:
        source: the model file or folder (``.pt`` TorchScript, ``.pt2``, HF folder, ...).
        recipe: a built-in name, a YAML path, or a :class:`~optkit.recipe.Recipe`.
        output: artifact folder; default ``optkit-out/<source stem>-<recipe name>``.
        data: validation data path (overrides ``validation.data``).
        overrides: dotted recipe keys → values, e.g. ``{"export.opset": 18}``.
        framework: ``"auto"`` or a registry name (``"torch"``).
        trust_pickle: allow loading pickles (runs code from the file, inside the confinement).
        trust_remote_code: let a Hugging Face folder's own code (``auto_map``) run, confined.
        trust_model_code: skip the static scan of the model file (dangerous; never skips the
            confinement).
        sandbox: ``"auto"`` confines the source model's worker where the kernel has Landlock,
            ``"require"`` fails where it has not, ``"off"`` runs it unconfined (recorded). ``strict``
            implies ``"require"``.
        overwrite: replace an existing output folder (only an optkit artifact or an empty folder).
        strict: a skipped gate fails the run, so does validation on random inputs or an
            unconfined source model.
        on_event: progress callback ``(event, payload)``: ``("step", name)`` when a step starts,
            ``("step_done", StepRecord)``, ``("shape", ShapeResult)`` per benchmarked shape.
        before_publish: called with the final result (approved or not) before the artifact is
            published; if it raises, nothing is published (the CLI writes --junit-xml here).
        sign_key: PEM EC private key: sign the artifact (``model.sig``, see :mod:`optkit.artifact.signing`).
        sign_keyless: sign with Sigstore instead (online).

    Returns:
        The :class:`ConvertResult`; ``approved`` tells whether the artifact was emitted.

    Raises:
        OptkitError: bad input (recipe, source, data, output) or a failing export/pass.
    """
    emit_event = on_event or (lambda kind, payload: None)
    overrides = dict(overrides or {})
    if data is not None:
        overrides["validation.data"] = data
    if isinstance(recipe, Recipe):
        resolved = apply_overrides(recipe, overrides) if overrides else recipe
    else:
        resolved = load_recipe(recipe, overrides)
    src_path = require_regular(source, "source model", SourceModelError, allow_dir=True)
    if resolved.validation.data:  # before the slow source load
        require_regular(resolved.validation.data, "validation data", DataError)
    out = Path(output) if output else Path("optkit-out") / f"{src_path.stem}-{resolved.name}"
    inputs = [src_path, resolved.validation.data, *[getattr(p, "calibration_data", None) for p in resolved.passes]]
    check_output(out, overwrite, protect=[Path(p) for p in inputs if p])
    check_sign_key(sign_key, sign_keyless)
    workdir = Path(tempfile.mkdtemp(prefix="optkit-"))
    options = _Options(
        framework,
        trust_pickle,
        trust_remote_code,
        trust_model_code,
        "require" if strict else sandbox,
        overwrite,
        strict,
        before_publish,
        sign_key,
        sign_keyless,
    )
    try:
        return _Run(resolved, src_path, out, workdir, options, emit_event).run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class _Options:
    """The caller's choices for one conversion (see :func:`convert`'s arguments)."""

    framework: str
    trust_pickle: bool
    trust_remote_code: bool
    trust_model_code: bool
    sandbox: SandboxMode
    overwrite: bool
    strict: bool
    before_publish: Callable[[ConvertResult], None] | None
    sign_key: str | Path | None
    sign_keyless: bool


class _Run:
    """One conversion's state; each method is one pipeline step."""

    def __init__(self, recipe: Recipe, source: Path, out: Path, workdir: Path, options: _Options, emit: Event) -> None:
        self.recipe, self.source_path, self.out, self.workdir = recipe, source, out, workdir
        self.options, self.overwrite, self.strict = options, options.overwrite, options.strict
        self.emit = emit
        self.steps: list[StepRecord] = []
        self.threads = recipe.benchmark.threads

    def _step(self, name: str, fn: Callable[[], tuple[Any, PassOutcome | None]]) -> Any:
        interrupts.check()
        self.emit("step", name)
        start = time.perf_counter()
        value, outcome = fn()
        interrupts.check()
        record = StepRecord(name, time.perf_counter() - start)
        if outcome is not None:
            record.details, record.warnings, record.skipped = outcome.details, outcome.warnings, outcome.skipped
        self.steps.append(record)
        self.emit("step_done", record)
        return value

    def run(self) -> ConvertResult:
        requested = self.options.framework
        framework = detect_framework(
            self.source_path, requested if requested != "auto" else self.recipe.source.framework
        )
        self.worker: SourceWorker | None = None
        try:
            source = self._step(f"load source ({framework.name})", lambda: self._load(framework))
            return self._run(source)
        except BaseException as exc:
            if self.worker is not None and not isinstance(exc, Exception):
                self.worker.kill()  # Ctrl-C, SIGTERM: do not wait for the worker to finish its request
            raise
        finally:
            if self.worker is not None:
                self.worker.close()

    def _load(self, framework) -> tuple[WorkerSource, PassOutcome]:
        """Start the confined worker, scan and load the source in it."""
        self.worker = SourceWorker(self.workdir, [self.source_path], self.options.sandbox)
        source = load_source(
            self.worker,
            framework,
            self.source_path,
            self.threads,
            trust_pickle=self.options.trust_pickle,
            trust_remote_code=self.options.trust_remote_code,
            trust_model_code=self.options.trust_model_code,
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
        return source, PassOutcome(self.source_path, {"sandbox": record.to_dict(), "scan": source.scan}, warnings)

    def _run(self, source: WorkerSource) -> ConvertResult:
        self.source_load_s = self.steps[-1].seconds
        info = source.info
        cfg = self.recipe.validation
        vset = self._step(
            "load validation data",
            lambda: (load_validation_set(cfg.data, info, cfg.max_samples, cfg.sequence_length), None),
        )
        src_runner = source.runner(self.threads)
        try:
            self.src_rss = activate_measured(src_runner, vset.batches(cfg.batch_size)[0])
        except OptkitError:
            raise  # the worker named it already (a sandbox denial, a crash)
        except Exception as exc:  # each framework raises its own types for inputs it rejects
            shapes = ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in vset.feeds.items())
            raise DataError(
                f"the source model rejected the validation inputs ({shapes}): "
                f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}",
                "give one array per model input with the model's rank and dtype",
            ) from exc
        src_out = self._step(
            f"reference run ({src_runner.name}, {vset.size} samples)",
            lambda: (_finite_reference(concat_outputs(src_runner.infer_many(vset.batches(cfg.batch_size)))), None),
        )
        model_path = self._step("export", lambda: self._export(source, vset, src_runner))
        evaluator = self._evaluator(src_out, vset, info)
        for index, pass_cfg in enumerate(self.recipe.passes):
            ctx = PassContext(
                self.workdir,
                info,
                index + 1,
                self.recipe.artifact.external_data_threshold_mb,
                vset,
                evaluator,
                self.threads,
                lambda message: self.emit("progress", message),
            )
            run_pass = resolve(PASSES[pass_cfg.type])
            model_path = self._step(pass_cfg.type, functools.partial(self._pass, run_pass, model_path, pass_cfg, ctx))
        art_runner = OrtRunner(model_path, self.threads)
        try:
            self.art_rss = activate_measured(art_runner, vset.batches(cfg.batch_size)[0])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise PassError(
                f"the final model does not run in ONNX Runtime: {str(exc).splitlines()[0][:300]}",
                "the last pass produced an invalid model; remove it or change its settings",
            ) from exc
        accuracy = self._step("validate accuracy", lambda: (self._validate(art_runner, src_out, vset, info), None))
        speed = self._step("benchmark speed", lambda: self._benchmark(source, src_runner, art_runner, vset))
        gates = gate_eval.evaluate_accuracy(cfg.gates, accuracy) + gate_eval.evaluate_speed(
            self.recipe.benchmark.gates, speed
        )
        return self._finish(source, vset, model_path, art_runner, accuracy, speed, gates)

    def _evaluator(self, src_out, vset: ValidationSet, info) -> CandidateEvaluator:
        """Scores search candidates with the recipe's accuracy gates, timed at the first CPU speed
        gate's shape (or the first benchmarked shape)."""
        bench = self.recipe.benchmark
        gate = next((g for g in bench.gates if g.device == "cpu"), None)
        batch = gate.batch_size if gate else bench.batch_sizes[0]
        seq = gate.sequence_length if gate and gate.sequence_length else bench.sequence_lengths[0]
        return CandidateEvaluator(
            src_out,
            vset,
            info,
            self.recipe.validation.gates,
            self.recipe.validation.batch_size,
            self.threads,
            vset.shaped(batch, seq if vset.pad_values else None),
        )

    def _export(self, source: WorkerSource, vset: ValidationSet, src_runner) -> tuple[Path, PassOutcome]:
        outcome = source.export(
            vset.batches(2)[0],
            self.recipe.export,
            self.workdir / "00-export.onnx",
            self.recipe.artifact.external_data_threshold_mb,
        )
        self._check_export(outcome, vset, src_runner)
        return outcome.model_path, outcome

    def _check_export(self, outcome: PassOutcome, vset: ValidationSet, src_runner) -> None:
        """Run the fresh export and the source on one real batch; outputs, matched by name, must be
        allclose (every failing output is named)."""
        batch = vset.batches(self.recipe.validation.batch_size)[0]
        try:
            onnx_out = OrtRunner(outcome.model_path, self.threads).infer(batch)
        except Exception as exc:
            raise ExportError(
                f"the exported model does not run in ONNX Runtime: {str(exc).splitlines()[0][:300]}",
                "try another --opset",
            ) from exc
        cfg = self.recipe.export
        worst = check_close(
            src_runner.infer(batch),
            onnx_out,
            cfg.check_atol,
            cfg.check_rtol,
            ExportError,
            "the exporter mistraced the model; try --opset or a torch.export (.pt2) source",
        )
        outcome.details["export_check_max_abs_error"] = worst

    def _pass(self, run_pass, path: Path, config, ctx: PassContext) -> tuple[Path, PassOutcome]:
        outcome = run_pass(path, config, ctx)
        return outcome.model_path, outcome

    def _validate(self, art_runner, src_out, vset: ValidationSet, info) -> AccuracyReport:
        cfg = self.recipe.validation
        art_out = concat_outputs([art_runner.infer(b) for b in vset.batches(cfg.batch_size)])
        return compare(src_out, art_out, vset, info)

    def _benchmark(self, source, src_runner, art_runner, vset: ValidationSet) -> tuple[SpeedReport, PassOutcome]:
        """Time every shape in alternating rounds (:func:`~optkit.validation.speed.benchmark`); the
        busy-machine warnings of every shape become the step's warnings."""
        bench = self.recipe.benchmark
        report = SpeedReport(self.threads, bench.warmup, bench.iterations)
        report.rounds, report.max_rounds, report.budget_s = bench.rounds, bench.max_rounds, bench.budget_s
        plan = TimingPlan(bench.warmup, bench.iterations, bench.rounds, bench.max_rounds, bench.budget_s)
        report.load_seconds = {
            "source": self.source_load_s + src_runner.load_seconds,
            "artifact": art_runner.load_seconds,
        }
        report.rss_growth_mb = {"source": self.src_rss, "artifact": self.art_rss}
        model = art_runner.model_path
        report.size_mb = {
            "source": size_on_disk_mb(self.source_path),
            "artifact": size_on_disk_mb(model, model.with_name(model.name + ".data")),
        }
        on_shape = lambda shape: self.emit("shape", shape)  # noqa: E731
        args = (vset, bench.batch_sizes, bench.sequence_lengths, plan, bench.gates, on_shape)
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
        return report, PassOutcome(model, {"rounds": rounds}, list(report.warnings))

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
            source={
                "path": str(self.source_path),
                "framework": source.framework,
                "kind": source.kind,
                "sha256": source.sha256(),
                "task": source.info.task,
                "versions": source.framework_versions(),
            },
            data={
                "kind": vset.kind,
                "origin": vset.origin,
                "sha256": vset.sha256,
                "samples": vset.size,
                "real": vset.is_real,
                "truncated_words": vset.truncated_words,
            },
            steps=self.steps,
            accuracy=accuracy,
            speed=speed,
            gates=gates,
            warnings=warnings,
            evidence="real-data" if vset.is_real else "random-inputs",
            sandbox=worker.sandbox.to_dict(),
        )
        result.approved = not result.rejections
        model = load_onnx(model_path)  # once: the manifest and the emitted file both read it
        result.manifest = self._manifest(result, model, art_runner, {}).model_dump(mode="json")
        if result.approved:
            self._emit(result, model, art_runner)
        elif self.options.before_publish is not None:
            self.options.before_publish(result)
        return result

    def _manifest(self, result: ConvertResult, model, art_runner, files) -> Manifest:
        opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
        return Manifest(
            approved=result.approved,
            strict=result.strict,
            recipe={
                "name": self.recipe.name,
                "sha256": self.recipe.sha256(),
                "resolved": self.recipe.model_dump(mode="json"),
            },
            source=result.source,
            artifact={
                "opset": opsets,
                "execution_provider": art_runner.provider,
                "optkit_version": __version__,
                "ir_version": model.ir_version,
                "nodes": len(model.graph.node),
            },
            files=files,
            environment=environment(),
            data=result.data,
            steps=[dataclasses.asdict(s) for s in result.steps],
            accuracy=dataclasses.asdict(result.accuracy),
            speed=dataclasses.asdict(result.speed) if result.speed else None,
            gates=[dataclasses.asdict(g) for g in result.gates],
            warnings=result.warnings,
            evidence=result.evidence,
            sandbox=result.sandbox,
            search=[_search_summary(s) for s in result.steps if isinstance(s.details.get("search"), dict)],
        )

    def _emit(self, result: ConvertResult, model, art_runner) -> None:
        from optkit.artifact.report import render_report

        with staging(self.out) as tmp:
            written = save_onnx(model, tmp / "model.onnx", self.recipe.artifact.external_data_threshold_mb)
            (tmp / "report.md").write_text(render_report(result))
            names = [p.name for p in written] + ["report.md"]
            names.append(write_attestation(tmp, self._manifest(result, model, art_runner, file_entries(tmp, names))))
            text = seal(self._manifest(result, model, art_runner, file_entries(tmp, names)))
            result.manifest = json.loads(text)
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


def _finite_reference(outputs: dict[str, Any]) -> dict[str, Any]:
    """The source's reference outputs, checked to be finite.

    Raises:
        SourceModelError: a float output holds NaN or Inf on the validation inputs (the source model
            itself, before any export: nothing can be validated against such a reference).
    """
    import numpy as np

    for name, array in outputs.items():
        if np.issubdtype(array.dtype, np.floating):
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
            if bad:
                raise SourceModelError(
                    f"the source model's own output '{name}' holds {bad} NaN/Inf value(s) on the validation "
                    "inputs (before any export)",
                    "check the source model and the data; optkit cannot validate "
                    "against a reference that is not finite",
                )
    return outputs


def _search_summary(step: StepRecord) -> dict[str, Any]:
    """The manifest's top-level record of one search (the full candidate table is in the step)."""
    search = step.details["search"]
    chosen = next(c for c in search["candidates"] if c["id"] == search["chosen"])
    return {
        "step": step.name,
        "strategy": search["strategy"],
        "candidates": len(search["candidates"]) - 1,
        "chosen": search["chosen"],
        "settings": chosen["settings"],
        "met_gates": search["met_gates"],
        "fp32_nodes": search["fp32_nodes"],
        "elapsed_s": search["elapsed_s"],
    }


__all__ = ["ConvertResult", "Event", "StepRecord", "convert"]
