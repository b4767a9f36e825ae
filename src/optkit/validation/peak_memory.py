"""Peak resident memory of each runner's own process.

The source runs in the confined worker process, the artifact in optkit's process, which also holds
everything else optkit loaded; so a resident-set delta in optkit's process says little about the
artifact (it read 0 MB once the allocator had the pages). Each side's figure is therefore read from
a process that holds that model alone:

* **source**: the worker's ``VmHWM`` (Linux ``/proc/<pid>/status``: the peak resident set size,
  "high water mark"). Before the benchmark step the mark is reset to the current resident set by
  writing ``5`` to ``/proc/<pid>/clear_refs`` (Linux >= 4.0, proc(5)), so that the figure is the
  peak while the loaded model serves the benchmark calls, not the export's; where the reset is
  refused the figure is the peak since the worker started (the scope says which).
* **artifact**: a short-lived child process (:func:`artifact_peak`, ``python -m
  optkit.validation.peak_memory``) imports ONNX Runtime, reads its ``VmHWM`` (the baseline after
  imports), creates the session through :class:`~optkit.runners.ort_runner.OrtRunner` (the same
  session options as the benchmark), runs the largest benchmarked batch :data:`CALLS` times and reads
  ``VmHWM`` again: the peak covers session creation and inference.

Units: MB = 10^6 bytes, as ``size_mb`` (``VmHWM`` is given in kB = 1024 bytes). Where ``/proc`` is
absent (not Linux) the child falls back to ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` and the
worker's figure is None.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optkit.runners.base import Feeds

#: inference calls of the largest batch in the artifact's child process
CALLS = 3
#: seconds the artifact's child process may take (imports, session creation, the calls)
CHILD_TIMEOUT_S = 300.0
METHOD = "VmHWM of /proc/<pid>/status (peak resident set), MB = 10^6 bytes"


@dataclass
class PeakMemory:
    """One runner's own process at its peak.

    Attributes:
        peak_mb: peak resident set size (MB, 10^6 bytes), None when it could not be read.
        baseline_mb: the same figure before the model was loaded (after imports; the artifact's
            child only), None otherwise.
        scope: what the peak covers, e.g. ``"benchmark step (worker's VmHWM reset before it)"``.
        method: how it was read.
        error: why ``peak_mb`` is None, or empty.
    """

    peak_mb: float | None
    baseline_mb: float | None = None
    scope: str = ""
    method: str = METHOD
    error: str = ""


def read_peak_mb(pid: int | str = "self") -> float | None:
    """``VmHWM`` of process ``pid`` (``"self"``: this one) in MB (10^6 bytes); None when
    ``/proc/<pid>/status`` cannot be read or holds no ``VmHWM`` line."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak(pid: int) -> bool:
    """Reset process ``pid``'s ``VmHWM`` to its current resident set (``/proc/<pid>/clear_refs``);
    False when refused (another user's process, no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def worker_peak(pid: int | None, reset_done: bool) -> PeakMemory:
    """The source worker's peak (``pid`` None: no worker process, e.g. a runner in this process).

    Args:
        pid: the worker's process id.
        reset_done: whether :func:`reset_peak` succeeded before the benchmark step (the scope).
    """
    if pid is None:
        return PeakMemory(None, error="the source runner has no process of its own")
    peak = read_peak_mb(pid)
    scope = (
        "benchmark step (the worker's VmHWM reset before it; the model loaded)"
        if reset_done
        else "the worker's whole life (load, reference run, export, benchmark): the reset was refused"
    )
    return PeakMemory(peak, None, scope, error="" if peak is not None else f"/proc/{pid}/status unreadable")


def artifact_peak(
    model_path: Path, threads: int, device: str, feeds: Feeds, workdir: Path, session: dict | None = None
) -> PeakMemory:
    """The artifact's peak in a child process of its own (module docstring).

    Args:
        model_path: the ``.onnx`` file (external data beside it).
        threads / device: as the benchmark's :class:`~optkit.runners.ort_runner.OrtRunner`.
        feeds: the batch to run (the largest benchmarked one), written to ``workdir`` as ``.npz``.
        workdir: a private folder for the inputs file.
        session: the artifact runner's session settings (``SessionSettings.model_dump()``, e.g. the
            tune-session pass's serving configuration); None = the default session for ``threads``.

    Returns:
        The record; a child that fails, times out or answers badly gives ``peak_mb`` None and the
        reason in ``error`` (the figure is a report, not a gate: the conversion goes on).
    """
    import numpy as np

    inputs = workdir / "peak-memory-inputs.npz"
    # object arrays (strings) as fixed-width text: the child loads with allow_pickle=False;
    # Any: numpy's stub would take a key for savez's allow_pickle
    arrays: dict[str, Any] = {k: v.astype(str) if v.dtype == object else v for k, v in feeds.items()}
    np.savez(inputs, **arrays)
    spec = json.dumps(
        {"model": str(model_path), "threads": threads, "device": device, "inputs": str(inputs), "session": session}
    )
    scope = f"child process: session creation + {CALLS} calls of the largest benchmarked batch"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "optkit.validation.peak_memory", spec],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            env=os.environ.copy(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return PeakMemory(None, None, scope, error=f"{type(exc).__name__}: {str(exc)[:200]}")
    finally:
        inputs.unlink(missing_ok=True)
    return parse_child_answer(proc.returncode, proc.stdout, proc.stderr, scope)


def parse_child_answer(returncode: int, stdout: str, stderr: str, scope: str) -> PeakMemory:
    """The record from the child's exit status and last stdout line (a JSON object with
    ``peak_mb``, ``baseline_mb`` and ``method``); a failure or a malformed answer gives ``peak_mb``
    None and the reason."""
    if returncode != 0:
        last = (stderr.strip().splitlines() or [""])[-1][:200]
        return PeakMemory(None, None, scope, error=f"the child process exited with {returncode}: {last}")
    try:
        answer = json.loads((stdout.strip().splitlines() or [""])[-1])
        peak, base = answer["peak_mb"], answer["baseline_mb"]
        method = str(answer["method"])[:200]
        if not all(isinstance(v, (int, float)) and 0 < v < 1e9 for v in (peak, base)):
            raise ValueError(f"figures out of range: {peak!r}, {base!r}")
    except (ValueError, KeyError, TypeError) as exc:
        return PeakMemory(None, None, scope, error=f"malformed answer from the child process: {str(exc)[:200]}")
    return PeakMemory(float(peak), float(base), scope, method)


def _own_peak() -> tuple[float, str]:
    """This process's peak (MB) and how it was read: ``VmHWM``, else ``ru_maxrss``."""
    peak = read_peak_mb()
    if peak is not None:
        return peak, METHOD
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return maxrss * scale / 1e6, "getrusage(RUSAGE_SELF).ru_maxrss, MB = 10^6 bytes"


def main(argv: list[str] | None = None) -> int:
    """The child: ``python -m optkit.validation.peak_memory SPEC_JSON``; prints one JSON line."""
    import numpy as np

    from optkit.runners.ort_runner import OrtRunner

    spec = json.loads((argv if argv is not None else sys.argv[1:])[0])
    import onnxruntime  # noqa: F401  (imported before the baseline, as the session needs it)

    baseline, method = _own_peak()
    from optkit.records.session import SessionSettings

    settings = SessionSettings.model_validate(spec["session"]) if spec.get("session") else None
    runner = OrtRunner(Path(spec["model"]), int(spec["threads"]), str(spec["device"]), session=settings)
    runner.activate()
    with np.load(spec["inputs"], allow_pickle=False) as data:
        feeds = {name: data[name] for name in data.files}
    for _ in range(CALLS):
        runner.infer(feeds)
    peak, _ = _own_peak()
    print(json.dumps({"peak_mb": peak, "baseline_mb": baseline, "method": method, "load_s": runner.load_seconds}))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a child process
    raise SystemExit(main())
