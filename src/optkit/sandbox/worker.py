"""The source-model worker: a process of its own that loads the user's (untrusted) model, runs it
as the reference, times it and exports it, confined by Landlock before it reads the model.

Started by :class:`optkit.sandbox.client.SourceWorker` as ``python -m optkit.sandbox.worker``; it
talks over two inherited pipe descriptors (:mod:`optkit.sandbox.protocol`), never over stdout, which
frameworks write to (stdout is sent to stderr, which the parent points at a log file).

Order of a worker's life: die with the parent (``PR_SET_PDEATHSIG``), ignore SIGINT, SIGTERM and
SIGHUP (sent to the whole process group by Ctrl-C, ``timeout`` and a closed terminal: optkit handles
them and kills the worker), confine itself (when asked), say hello with what confinement
holds, then serve requests until ``shutdown`` or end of input. The static scan
(:mod:`optkit.scan`) and the framework's loader both run inside the confinement. Landlock
confines one thread, so nothing that starts threads (numpy, a framework) is imported before it:
this module and :mod:`optkit.sandbox.protocol` use the standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from optkit.errors import debug_enabled
from optkit.sandbox.protocol import error_reply, receive, send


class _Server:
    """Serves one loaded source model; each ``op_<name>`` method answers one request kind."""

    def __init__(self, scratch: Path, inputs: Path) -> None:
        from optkit.sandbox.arrays import OutputFolder  # numpy: only once confined

        self.scratch, self.input_folder = scratch, inputs
        self.arrays = OutputFolder(scratch / "io")
        self.source: Any = None
        self.runners: dict[tuple[str, int], Any] = {}

    def op_load(
        self,
        framework: str,
        path: str,
        threads: int,
        trust_pickle: bool = False,
        trust_remote_code: bool = False,
        trust_model_code: bool = False,
        trust_skops_types: list[str] | None = None,
        model_code: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        import inspect

        from optkit.errors import SourceModelError, UsageError
        from optkit.io_spec import info_to_dict
        from optkit.registry import FRAMEWORKS, resolve
        from optkit.scan import scan_source

        loader = resolve(FRAMEWORKS[framework].loader)
        skops_types = tuple(str(t) for t in trust_skops_types or ())
        extra: dict[str, Any] = {}
        if skops_types:  # only loaders that read .skops files take the consent
            if "trust_skops_types" not in inspect.signature(loader).parameters:
                raise UsageError(
                    f"--trust-skops-type applies to scikit-learn .skops files; this is a {framework} model",
                    "drop --trust-skops-type",
                )
            extra["trust_skops_types"] = skops_types
        scan = scan_source(
            Path(path),
            framework,
            trust_model_code=trust_model_code,
            trust_remote_code=trust_remote_code,
            trust_skops_types=skops_types,
        )
        if model_code is not None:  # the user's own code for a state dict: PyTorch only
            if framework != "torch":
                raise SourceModelError(
                    f"--model-code is for PyTorch state dicts, but the source is {framework}",
                    "drop --model-code, or pass the state dict file (.pt/.pth/.bin/.safetensors)",
                )
            extra["model_code"] = model_code
        start = time.perf_counter()
        self.source = loader(
            Path(path),
            self.scratch / "load",
            trust_pickle=trust_pickle,
            threads=threads,
            trust_remote_code=trust_remote_code,
            **extra,
        )
        return {
            "info": info_to_dict(self.source.info),
            "kind": self.source.kind,
            "framework": self.source.framework,
            "versions": self.source.framework_versions(),
            "load_seconds": time.perf_counter() - start,
            "scan": scan.to_dict(),
        }

    def _inputs(self, names: list[list[str]]) -> Any:
        from optkit.sandbox.arrays import read_inputs

        return read_inputs(self.input_folder, names)

    def _runner(self, device: str, threads: int) -> Any:
        key = (device, threads)
        if key not in self.runners:
            self.runners[key] = self.source.runner(threads, device)
        return self.runners[key]

    def op_runner(self, device: str, threads: int) -> dict[str, Any]:
        return {"name": self._runner(device, threads).name}

    def op_activate(self, device: str, threads: int) -> dict[str, Any]:
        runner = self._runner(device, threads)
        runner.activate()
        return {"load_seconds": runner.load_seconds}

    def op_infer(self, device: str, threads: int, batches: list[list[list[str]]]) -> dict[str, Any]:
        runner = self._runner(device, threads)
        return {"outputs": [self.arrays.write(runner.infer(self._inputs(b))) for b in batches]}

    def op_time(
        self, device: str, threads: int, feeds: list[list[str]], warmup: int, iterations: int
    ) -> dict[str, Any]:
        runner = self._runner(device, threads)
        return {"seconds": runner.time_calls(self._inputs(feeds), warmup, iterations)}

    def op_time_pass(self, device: str, threads: int, batches: list[list[list[str]]], warm: bool) -> dict[str, Any]:
        runner = self._runner(device, threads)
        return {"seconds": runner.time_pass([self._inputs(b) for b in batches], bool(warm))}

    def op_export(self, example: list[list[str]], config: dict[str, Any], threshold_mb: float) -> dict[str, Any]:
        from optkit.recipe import ExportConfig
        from optkit.registry import FRAMEWORKS, resolve

        out = self.scratch / "export" / "00-export.onnx"  # optkit takes it from exactly there
        out.parent.mkdir(parents=True, exist_ok=True)
        exporter = resolve(FRAMEWORKS[self.source.framework].exporter)
        outcome = exporter(self.source, self._inputs(example), ExportConfig.model_validate(config), out, threshold_mb)
        return {
            "model_path": str(outcome.model_path),
            "details": outcome.details,
            "warnings": outcome.warnings,
            "skipped": outcome.skipped,
        }

    def op_traits(self) -> dict[str, Any]:
        return {"traits": self.source.traits()}

    def op_device_missing(self, device: str) -> dict[str, Any]:
        return {"reason": self.source.device_missing(device)}


#: how a refused open/connect reads once a framework has re-raised it as its own error type (Paddle
#: says only "Cannot open <path> to save variables"); inside the confinement every path the model
#: may legitimately read is granted, so a failure to open is taken as a denial
DENIALS = ("Permission denied", "Operation not permitted", "Network is unreachable")
#: "Cannot open /some/path ..." (Paddle's words for a refused save): a denial only when the path lies
#: outside the worker's scratch folder, so that a corrupt file's "cannot open" stays what it is
OPEN_FAILED = re.compile(r"(?:[Cc]annot|[Uu]nable to|[Ff]ailed to) open (?:file )?['\"]?(/[^\s'\"]+)")


def sandbox_denial(exc: BaseException, scratch: Path) -> BaseException:
    """``exc`` as the one-line SourceModelError it is when the confinement refused something the
    model (or its framework) tried: a ``PermissionError`` anywhere in its chain, or a framework
    error whose text says so (TensorFlow and Paddle re-raise OS errors as their own types).
    Other exceptions are returned unchanged."""
    from optkit.errors import SourceModelError

    chain: BaseException | None = exc
    seen: set[int] = set()
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        text = str(chain)
        opened = OPEN_FAILED.search(text)
        outside = opened is not None and not Path(opened.group(1)).is_relative_to(scratch)
        if isinstance(chain, PermissionError) or outside or any(d in text for d in DENIALS):
            first = (text.strip().splitlines() or [type(chain).__name__])[0][:200]
            return SourceModelError(
                f"the sandbox stopped the source model: it tried to write, or reach, outside its scratch folder "
                f"while loading or running ({first})",
                "optkit refuses models that write files or use the network; if a framework needs a path, "
                "report it (OPTKIT_SANDBOX=off runs unconfined and says so in the manifest)",
            )
        chain = chain.__cause__ or chain.__context__
    return exc


def serve(read_fd: int, write_fd: int, scratch: Path, inputs: Path, confinement: dict[str, Any]) -> int:
    """Say hello, then answer requests until ``shutdown`` or end of input; returns the exit status."""
    requests, answers = os.fdopen(read_fd, "r"), os.fdopen(write_fd, "w")
    server = _Server(scratch, inputs)
    send(answers, {"ok": True, "pid": os.getpid(), "confinement": confinement})
    while True:
        request = receive(requests)
        if request is None or request.get("op") == "shutdown":
            return 0
        op = getattr(server, f"op_{request.pop('op', '')}", None)
        try:
            if op is None:
                raise ValueError("unknown worker request")
            reply = {"ok": True, **op(**request)}
        except BaseException as exc:  # every failure goes back to the parent as an answer
            if debug_enabled():
                import traceback

                traceback.print_exc()
            reply = error_reply(sandbox_denial(exc, scratch) if confinement.get("status") == "confined" else exc)
        send(answers, reply)


def _confine(scratch: Path, read_paths: list[str], forbidden: list[str]) -> dict[str, Any]:
    from optkit.sandbox.landlock import confine, default_paths

    read_only, writable = default_paths([Path(p) for p in read_paths], scratch, forbidden=[Path(p) for p in forbidden])
    return {"status": "confined", **confine(read_only, writable).to_dict()}


def main(argv: list[str] | None = None) -> int:
    """Entry point (``python -m optkit.sandbox.worker``)."""
    parser = argparse.ArgumentParser(prog="optkit-worker")
    parser.add_argument("--read-fd", type=int, required=True)
    parser.add_argument("--write-fd", type=int, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--confine", choices=["on", "off"], default="on")
    parser.add_argument("--inputs", type=Path, required=True, help="the folder optkit writes input arrays to")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--read", default="[]", help="JSON list of paths the model may read")
    parser.add_argument(
        "--forbid",
        default="[]",
        help="JSON list: optkit's real home and temp folders, "
        "never granted through sys.path (HOME and TMPDIR point into scratch here)",
    )
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # optkit handles these and kills the worker
        signal.signal(signum, signal.SIG_IGN)
    os.dup2(2, 1)  # frameworks print to stdout: send it to the log with stderr
    try:
        from optkit.sandbox.landlock import die_with_parent

        die_with_parent()
        if os.getppid() != args.parent_pid:  # optkit died before PR_SET_PDEATHSIG took hold
            return 1
        confinement = (
            _confine(args.scratch, json.loads(args.read), json.loads(args.forbid))
            if args.confine == "on"
            else {"status": "off"}
        )
    except BaseException as exc:  # reported to the parent, which decides whether to go on
        with os.fdopen(args.write_fd, "w") as answers:
            send(answers, error_reply(exc))
        return 1
    return serve(args.read_fd, args.write_fd, args.scratch, args.inputs, confinement)


if __name__ == "__main__":
    sys.exit(main())
