"""optkit's side of the source-model worker: start it, talk to it, stop it.

The worker (:mod:`optkit.sandbox.worker`) is a child process in a session of its own (so that
killing it kills what it started), with its own scratch folder, the only place it may write. It
gets an allow-listed environment (no tokens or keys of optkit's), ``PYTHONSAFEPATH`` (a file it
writes can never shadow a module), and its stdout and stderr go to ``worker.log`` beside that folder
(append-only; the tail is shown on failure, the whole output with ``OPTKIT_DEBUG=1``). What optkit
keeps of its work is taken by :mod:`optkit.sandbox.source` through :mod:`optkit.sandbox.arrays`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from optkit import interrupts
from optkit.errors import SandboxUnavailable, SourceModelError, debug_enabled
from optkit.sandbox.arrays import InputFolder
from optkit.sandbox.protocol import RAISABLE, raise_error, send

SandboxMode = Literal["auto", "require", "off"]

#: environment variables the worker inherits (by name or prefix); everything else of optkit's
#: environment (CI tokens, cloud keys, OPTKIT_SIGN_KEY_PASSWORD) stays out of the model's reach
ENV_NAMES = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "OPTKIT_DEBUG",
        "TOKENIZERS_PARALLELISM",
        "POLYGRAPHY_AUTOINSTALL_DEPS",
    }
)
ENV_PREFIXES = ("LC_", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "CUDA_", "NVIDIA_", "TF_", "GLOG_", "FLAGS_")
#: the longest answer line optkit reads from the worker (bytes); arrays travel as files
MAX_ANSWER = 16 << 20


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


def worker_environment(scratch: Path) -> dict[str, str]:
    """The worker's environment: :data:`ENV_NAMES` / :data:`ENV_PREFIXES` of optkit's, plus ``HOME``
    and ``TMPDIR`` in its scratch folder, offline hubs and ``PYTHONSAFEPATH``."""
    env = {k: v for k, v in os.environ.items() if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}
    env.update(
        {
            "HOME": str(scratch),
            "TMPDIR": str(scratch / "tmp"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONSAFEPATH": "1",
        }
    )
    return env


class SourceWorker:
    """A worker process holding one source model.

    Use as a context manager: the worker is stopped (and killed if it does not stop) on exit.

    Args:
        workdir: the run's temporary folder; the worker gets ``workdir/source`` as its scratch and
            reads its inputs from ``workdir/in``.
        read_paths: the source model's paths (its companion files are added, see
            :func:`optkit.sandbox.read_paths.model_read_paths`).
        mode: ``"auto"`` (confine where the kernel can), ``"require"`` (fail where it cannot) or
            ``"off"``.

    Raises:
        SandboxUnavailable: ``mode="require"`` on a kernel without Landlock, or confinement failed.
        SourceModelError: the worker could not start or answered nonsense.
    """

    def __init__(self, workdir: Path, read_paths: list[Path], mode: SandboxMode = "auto") -> None:
        from optkit.sandbox.read_paths import model_read_paths  # here: it imports onnx, whose threads Landlock refuses

        self.workdir, self.mode = workdir, sandbox_mode(mode)
        self.scratch = workdir / "source"
        (self.scratch / "tmp").mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "worker.log"
        self.inputs = InputFolder(workdir / "in")
        self._proc: subprocess.Popen | None = None
        grants = list(dict.fromkeys(q for p in read_paths for q in model_read_paths(p)))
        try:
            self.sandbox = self._start([*grants, self.inputs.folder.resolve()])
        except BaseException:
            self.kill()
            raise

    # lifecycle -------------------------------------------------------------------------------
    def _start(self, read_paths: list[Path]) -> SandboxRecord:
        from optkit.sandbox.landlock import abi_version

        abi = abi_version()
        if abi == 0 and self.mode == "require":
            raise SandboxUnavailable(
                "this system has no Landlock (Linux 5.13+ with Landlock enabled), so the "
                "source model cannot be confined",
                "run on a Linux host with Landlock, "
                "or drop --require-sandbox/--strict to run unconfined (recorded as such)",
            )
        confine = "on" if abi and self.mode != "off" else "off"
        self._proc = self._spawn(read_paths, confine)
        hello = self._read()
        if not hello.get("ok"):
            error = hello.get("error")
            raise_error(error if isinstance(error, dict) else {})
        if confine == "off":
            return SandboxRecord(
                "off" if self.mode == "off" else "unavailable",
                {
                    "reason": "OPTKIT_SANDBOX=off"
                    if self.mode == "off"
                    else "the kernel has no Landlock; the source model ran unconfined"
                },
            )
        confinement = hello.get("confinement")
        if not isinstance(confinement, dict):
            raise self._malformed()
        return SandboxRecord("confined", {k: v for k, v in confinement.items() if k != "status"})

    def _spawn(self, read_paths: list[Path], confine: str) -> subprocess.Popen:
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        forbidden = [str(Path.home().resolve()), str(Path(tempfile.gettempdir()).resolve())]
        # append-only: no rewriting it later; closed in the finally below, once the worker has it
        log = None if debug_enabled() else open(self.log_path, "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "optkit.sandbox.worker",
                    "--read-fd",
                    str(to_worker_r),
                    "--write-fd",
                    str(from_worker_w),
                    "--scratch",
                    str(self.scratch),
                    "--confine",
                    confine,
                    "--inputs",
                    str(self.inputs.folder),
                    "--parent-pid",
                    str(os.getpid()),
                    "--read",
                    json.dumps([str(p) for p in read_paths]),
                    "--forbid",
                    json.dumps(forbidden),
                ],
                pass_fds=(to_worker_r, from_worker_w),
                env=worker_environment(self.scratch),
                stdin=subprocess.DEVNULL,
                stdout=log or None,
                stderr=subprocess.STDOUT if log else None,
                cwd=str(self.scratch),
                start_new_session=True,
            )
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
            if log:
                log.close()
        self._requests = os.fdopen(to_worker_w, "w")
        self._answers = os.fdopen(from_worker_r, "r", errors="replace")
        return proc

    def close(self) -> None:
        """Stop the worker: ``shutdown``, then SIGKILL (its whole session) if it has not exited
        within 5 s."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if proc.poll() is None:
                send(self._requests, {"op": "shutdown"})
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self._kill_session(proc)
            for stream in (self._requests, self._answers):
                with contextlib.suppress(OSError):
                    stream.close()
            self._proc = None

    def kill(self) -> None:
        """Kill the worker and everything it started at once (Ctrl-C, SIGTERM, a failed start)."""
        if self._proc is not None:
            self._kill_session(self._proc)
        if getattr(self, "_requests", None) is not None:
            self.close()
        self._proc = None

    @staticmethod
    def _kill_session(proc: subprocess.Popen) -> None:
        """SIGKILL the worker's session (the worker and its children, e.g. paddle2onnx), then reap."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def __enter__(self) -> SourceWorker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.kill()  # KeyboardInterrupt / SystemExit: do not wait for the worker
        else:
            self.close()

    @property
    def pid(self) -> int:
        """The worker's process id."""
        assert self._proc is not None
        return self._proc.pid

    # requests --------------------------------------------------------------------------------
    def _malformed(self) -> SourceModelError:
        """Kill the worker and return the error for an answer that is not what was asked for."""
        self.kill()
        return SourceModelError(
            "the source model's worker sent a malformed answer",
            "a hostile or broken model; set OPTKIT_DEBUG=1 to see the worker's output",
        )

    def _read(self) -> dict[str, Any]:
        assert self._proc is not None
        try:
            line = self._answers.readline(MAX_ANSWER)
            if line and not line.endswith("\n"):
                raise ValueError("answer too long")
            answer = json.loads(line) if line else None
        except ValueError:
            raise self._malformed() from None
        if answer is None:
            proc = self._proc
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                raise self._malformed() from None  # closed its end but runs on
            interrupts.check()  # a signal that reached the worker first is still the user's Ctrl-C / SIGTERM
            code = proc.returncode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise SourceModelError(
                f"the source model's worker process {how}{self._log_tail()}",
                "the model or its framework crashed while loading or running it; "
                "set OPTKIT_DEBUG=1 to see the worker's output",
            )
        if not isinstance(answer, dict):
            raise self._malformed()
        return answer

    def _log_tail(self) -> str:
        """The last non-empty line of the worker's log (read from its last 64 KiB, control
        characters removed), for an error message."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 65536))
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        lines = [re.sub(r"[\x00-\x1f\x7f]", "", ln).strip() for ln in text.splitlines()]
        lines = [ln for ln in lines if ln]
        return f" (last output: {lines[-1][:200]})" if lines else ""

    def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        """Send one request and wait for its answer; input files written for it are removed after.

        Raises:
            OptkitError: the worker raised one (same kind, message and hint).
            WorkerCallError: the worker raised another exception.
            SourceModelError: the worker died or answered nonsense.
        """
        with contextlib.suppress(BrokenPipeError, ValueError):  # the worker is gone; _read reports how it ended
            send(self._requests, {"op": op, **arguments})
        try:
            answer = self._read()
        finally:
            self.inputs.clear()
        if not answer.get("ok"):
            error = answer.get("error")
            if not isinstance(error, dict):
                error = {}
            if op == "load" and error.get("type") not in RAISABLE:
                raise SourceModelError(
                    f"cannot load {arguments.get('path')}: {error.get('type')}: {str(error.get('message'))[:200]}",
                    "the file may be truncated, corrupt or saved by an incompatible framework version",
                )
            raise_error(error)
        return answer

    def field(self, answer: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
        """``answer[key]`` when it is of ``kind``.

        Raises:
            SourceModelError: missing or of another type (the worker is killed).
        """
        value = answer.get(key)
        if not isinstance(value, kind) or (kind is float and isinstance(value, bool)):
            raise self._malformed()
        return value
