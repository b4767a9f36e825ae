"""optkit's side of the source-model worker: start it, load the model in it, and use it as the
reference (a :class:`~optkit.runners.base.Runner`) and as the exporter.

The worker (:mod:`optkit.sandbox.worker`) is a child process with its own scratch folder, the only
place it may write; its stdout and stderr go to ``worker.log`` beside that folder (shown on
failure, and passed through with ``OPTKIT_DEBUG=1``). Whatever it produces that optkit keeps
(the exported model, tokenizer files) is moved out of its reach before use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from optkit import interrupts
from optkit.errors import DataError, SourceModelError
from optkit.io_spec import ModelInfo, info_from_dict
from optkit.pass_context import PassOutcome
from optkit.recipe import ExportConfig
from optkit.runners.base import Feeds, Runner
from optkit.sandbox.arrays import ArrayFolder
from optkit.sandbox.protocol import RAISABLE, WorkerCallError, raise_error, receive, send

SandboxMode = Literal["auto", "require", "off"]


@dataclass
class SandboxRecord:
    """What confined the source model, for the terminal, report and manifest.

    Attributes:
        status: ``"confined"`` (Landlock rules in force), ``"unavailable"`` (the kernel has no
            Landlock: the worker ran unconfined) or ``"off"`` (turned off with ``OPTKIT_SANDBOX=off``).
        details: the worker's :class:`~optkit.sandbox.landlock.Confinement` as a dict (ABI,
            network blocking, paths), or the reason it is unavailable.
    """

    status: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"status": ..., **details}``."""
        return {**self.details, "status": self.status}


def sandbox_mode(requested: SandboxMode = "auto") -> SandboxMode:
    """The mode in force: ``OPTKIT_SANDBOX=off`` (benchmarks, debugging) turns confinement off
    unless ``require`` was asked for."""
    if requested == "auto" and os.environ.get("OPTKIT_SANDBOX", "").lower() == "off":
        return "off"
    return requested


class SourceWorker:
    """A worker process holding one source model.

    Use as a context manager: the worker is stopped (and killed if it does not stop) on exit.

    Args:
        workdir: the run's temporary folder; the worker gets ``workdir/source`` as its scratch.
        read_paths: what the model may read besides Python and the system (the source path).
        mode: ``"auto"`` (confine where the kernel can), ``"require"`` (fail where it cannot) or
            ``"off"``.

    Raises:
        SandboxUnavailable: ``mode="require"`` on a kernel without Landlock.
        SourceModelError: the worker could not start.
    """

    def __init__(self, workdir: Path, read_paths: list[Path], mode: SandboxMode = "auto") -> None:
        self.workdir, self.mode = workdir, sandbox_mode(mode)
        self.scratch = workdir / "source"
        self.scratch.mkdir(parents=True, exist_ok=True)
        (self.scratch / "tmp").mkdir(exist_ok=True)
        self.log_path = workdir / "worker.log"
        self.inputs = ArrayFolder(self.scratch / "io", "in")
        self.outputs = ArrayFolder(self.scratch / "io", "out")
        from optkit.sandbox.read_paths import model_read_paths  # here: it imports onnx, whose threads Landlock refuses

        self.sandbox = self._start(list(dict.fromkeys(q for p in read_paths for q in model_read_paths(p))))

    # lifecycle -------------------------------------------------------------------------------
    def _start(self, read_paths: list[Path]) -> SandboxRecord:
        from optkit.sandbox.landlock import abi_version

        abi = abi_version()
        if abi == 0 and self.mode == "require":
            from optkit.errors import SandboxUnavailable

            raise SandboxUnavailable("this system has no Landlock (Linux 5.13+ with Landlock enabled), so the "
                                     "source model cannot be confined", "run on a Linux host with Landlock, "
                                     "or drop --require-sandbox/--strict to run unconfined (recorded as such)")
        confine = "on" if abi and self.mode != "off" else "off"
        self._proc = self._spawn(read_paths, confine)
        hello = self._read()
        if not hello.get("ok"):
            self.close()
            raise_error(hello.get("error", {}))
        if confine == "off":
            return SandboxRecord("off" if self.mode == "off" else "unavailable",
                                 {"reason": "OPTKIT_SANDBOX=off" if self.mode == "off" else
                                  "the kernel has no Landlock; the source model ran unconfined"})
        return SandboxRecord("confined", {k: v for k, v in hello["confinement"].items() if k != "status"})

    def _spawn(self, read_paths: list[Path], confine: str) -> subprocess.Popen:
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        env = {**os.environ, "HOME": str(self.scratch), "TMPDIR": str(self.scratch / "tmp"),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
               "PYTHONDONTWRITEBYTECODE": "1"}
        debug = os.environ.get("OPTKIT_DEBUG", "").lower() in ("1", "true", "yes")
        log = None if debug else open(self.log_path, "wb")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "optkit.sandbox.worker", "--read-fd", str(to_worker_r),
                 "--write-fd", str(from_worker_w), "--scratch", str(self.scratch), "--confine", confine,
                 "--read", json.dumps([str(p) for p in read_paths])],
                pass_fds=(to_worker_r, from_worker_w), env=env, stdin=subprocess.DEVNULL,
                stdout=log or None, stderr=subprocess.STDOUT if log else None, cwd=str(self.scratch))
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
            if log:
                log.close()
        self._requests = os.fdopen(to_worker_w, "w")
        self._answers = os.fdopen(from_worker_r, "r")
        return proc

    def close(self) -> None:
        """Stop the worker: ``shutdown``, then SIGKILL if it has not exited within 5 s."""
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        try:
            if proc.poll() is None:
                send(self._requests, {"op": "shutdown"})
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        finally:
            for stream in (self._requests, self._answers):
                try:
                    stream.close()
                except OSError:
                    pass
            self._proc = None

    def kill(self) -> None:
        """Kill the worker at once (Ctrl-C, SIGTERM)."""
        if getattr(self, "_proc", None) is not None and self._proc.poll() is None:
            self._proc.kill()
        self.close()

    def __enter__(self) -> "SourceWorker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.kill()  # KeyboardInterrupt / SystemExit: do not wait for the worker
        else:
            self.close()

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._proc.pid

    # requests --------------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        try:
            answer = receive(self._answers)
        except ValueError:
            answer = None
        if answer is None:
            self._proc.wait()
            interrupts.check()  # a signal that reached the worker first is still the user's Ctrl-C / SIGTERM
            code = self._proc.returncode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise SourceModelError(f"the source model's worker process {how}{self._log_tail()}",
                                   "the model or its framework crashed while loading or running it; "
                                   "set OPTKIT_DEBUG=1 to see the worker's output")
        return answer

    def _log_tail(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return f" (last output: {lines[-1][:200]})" if lines else ""

    def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        """Send one request and wait for its answer.

        Raises:
            OptkitError: the worker raised one (same kind, message and hint).
            WorkerCallError: the worker raised another exception.
            SourceModelError: the worker died.
        """
        try:
            send(self._requests, {"op": op, **arguments})
        except (BrokenPipeError, ValueError):
            pass  # the worker is gone; _read reports how it ended
        answer = self._read()
        if not answer.get("ok"):
            error = answer.get("error", {})
            if op == "load" and error.get("type") not in RAISABLE:
                raise SourceModelError(
                    f"cannot load {arguments.get('path')}: {error.get('type')}: {str(error.get('message'))[:200]}",
                    "the file may be truncated, corrupt or saved by an incompatible framework version")
            raise_error(error)
        return answer


@dataclass
class WorkerSource:
    """A source model loaded in a :class:`SourceWorker`: what the pipeline needs of it.

    Attributes:
        path: the file or folder the user gave.
        framework / kind: registry key and on-disk format (from the worker's loader).
        info: the model's names, task and config (tokenizer files copied out of the worker).
        versions: framework package versions, for the manifest.
        load_seconds: the loader's wall time in the worker (s).
        scan: the static scan's report (see :mod:`optkit.scan`).
    """

    worker: SourceWorker
    path: Path
    framework: str
    kind: str
    info: ModelInfo
    versions: dict[str, str]
    load_seconds: float
    scan: dict[str, Any]
    hasher: Any = None

    def framework_versions(self) -> dict[str, str]:
        """Versions of the framework packages the worker used."""
        return dict(self.versions)

    def sha256(self) -> str:
        """The source's sha256, computed here (without loading it) by the framework's hasher."""
        return self.hasher(self.path)

    def runner(self, threads: int, device: str = "cpu") -> "WorkerRunner":
        """The reference runner, executing in the worker."""
        return WorkerRunner(self.worker, threads, device)

    def device_missing(self, device: str) -> str | None:
        """Why the source's framework cannot run on ``device`` here, or None."""
        return self.worker.call("device_missing", device=device)["reason"]

    def export(self, example: Feeds, config: ExportConfig, out_path: Path, threshold_mb: float) -> PassOutcome:
        """Export to ONNX in the worker, then move the model (and external data) to ``out_path``,
        out of the worker's reach.

        Raises:
            ExportError: the exporter failed (raised in the worker).
        """
        answer = self.worker.call("export", example=self.worker.inputs.write(example),
                                  config=config.model_dump(mode="json"), threshold_mb=threshold_mb)
        made = Path(answer["model_path"])
        data = made.with_name(made.name + ".data")
        _take_file(self.worker.scratch, made, out_path)
        if data.exists() or data.is_symlink():
            _take_file(self.worker.scratch, data, out_path.with_name(out_path.name + ".data"))
        return PassOutcome(out_path, dict(answer["details"]), list(answer["warnings"]), answer["skipped"])


def load_source(worker: SourceWorker, framework: Any, path: Path, threads: int, *, trust_pickle: bool = False,
                trust_remote_code: bool = False, trust_model_code: bool = False) -> WorkerSource:
    """Scan and load ``path`` in ``worker`` with ``framework``'s loader.

    Args:
        framework: the :class:`~optkit.registry.Framework` (its hasher runs here, its loader in the worker).

    Raises:
        UnsafeModelError: the static scan found code or file access in the model.
        SourceModelError / DependencyError: as the framework's loader raises them.
    """
    from optkit.registry import resolve

    answer = worker.call("load", framework=framework.name, path=str(path.resolve()), threads=threads,
                         trust_pickle=trust_pickle, trust_remote_code=trust_remote_code,
                         trust_model_code=trust_model_code)
    info = info_from_dict(answer["info"])
    hf_dir = Path(info.hf_dir) if info.hf_dir else None
    if hf_dir is not None and not _inside(worker.scratch, hf_dir):
        # the user's own HF folder (the source itself); any other folder the worker names is not read
        info.hf_dir = str(path) if hf_dir.resolve() == path.resolve() else None
    elif hf_dir is not None:
        copy = worker.workdir / "hf"  # tokenizer files the worker extracted: keep our own copy
        copy.mkdir(exist_ok=True)
        for file in Path(info.hf_dir).iterdir():
            if file.is_file() and not file.is_symlink():
                _take_file(worker.scratch, file, copy / file.name, move=False)
        info.hf_dir = str(copy)
    return WorkerSource(worker, path, answer["framework"], answer["kind"], info, answer["versions"],
                        float(answer["load_seconds"]), answer.get("scan") or {}, resolve(framework.hasher))


def _rejected(what: str, feeds: Feeds, exc: WorkerCallError) -> DataError:
    """The one-line error for ``what`` inputs (validation, benchmark) the source model failed on,
    naming their shapes."""
    shapes = ", ".join(f"{name} {tuple(array.shape)} {array.dtype}" for name, array in feeds.items())
    return DataError(f"the source model rejected the {what} inputs ({shapes}): {exc.type_name}: "
                     f"{exc.message[:200]}",
                     "give inputs of the model's rank, dtype and sizes; benchmark shapes come from "
                     "--batch-sizes and --sequence-lengths (e.g. --sequence-lengths 32 for a model with "
                     "fewer positions)")


def _inside(folder: Path, path: Path) -> bool:
    """True when ``path`` (symlinks resolved) lies inside ``folder``."""
    return folder.resolve() in path.resolve().parents


def _take_file(scratch: Path, made: Path, destination: Path, move: bool = True) -> None:
    """Move (or copy) a regular file the worker made to ``destination``, out of its reach.

    Raises:
        SourceModelError: ``made`` is not a regular file inside the worker's scratch folder (a
            symlink, or a path outside: a hostile model must not make optkit read or move the
            user's files).
    """
    if made.is_symlink() or not made.is_file() or not _inside(scratch, made):
        raise SourceModelError(f"the source model's worker reported a file that is not its own: {made}",
                               "a hostile or broken model; optkit does not follow it")
    (shutil.move if move else shutil.copyfile)(str(made), str(destination))


class WorkerRunner(Runner):
    """The reference runner of a :class:`WorkerSource`: every call executes in the worker; timing
    loops run there too (:meth:`time_calls`), so no message passing is timed."""

    def __init__(self, worker: SourceWorker, threads: int, device: str = "cpu") -> None:
        super().__init__(threads, device)
        self.worker = worker
        self.name = worker.call("runner", device=device, threads=threads)["name"]

    def _activate(self) -> None:
        self.worker.call("activate", device=self.device, threads=self.threads)

    def _infer(self, feeds: Feeds) -> Feeds:
        return self.infer_many([feeds])[0]

    def infer_many(self, batches: list[Feeds]) -> list[Feeds]:
        """Run several batches in one request; outputs in order.

        Raises:
            DataError: the source model failed on these inputs (named with their shapes).
        """
        self.activate()
        try:
            answer = self.worker.call("infer", device=self.device, threads=self.threads,
                                      batches=[self.worker.inputs.write(b) for b in batches])
        except WorkerCallError as exc:
            raise _rejected("validation", batches[0], exc) from None
        return [self.worker.outputs.read(names) for names in answer["outputs"]]

    def time_calls(self, feeds: Feeds, warmup: int, iterations: int) -> list[float]:
        """``warmup`` untimed then ``iterations`` timed calls inside the worker; seconds per call.

        Raises:
            DataError: the source model failed at this shape (e.g. a benchmark sequence length
                longer than the model's position embeddings).
        """
        self.activate()
        try:
            answer = self.worker.call("time", device=self.device, threads=self.threads,
                                      feeds=self.worker.inputs.write(feeds), warmup=warmup, iterations=iterations)
        except WorkerCallError as exc:
            raise _rejected("benchmark", feeds, exc) from None
        return [float(s) for s in answer["seconds"]]

    def process_rss_mb(self) -> float:
        """Resident set size of the worker process, MB (10^6 bytes)."""
        try:
            return psutil.Process(self.worker.pid).memory_info().rss / 1e6
        except psutil.Error:
            return 0.0
