"""Typed errors.

An :class:`OptkitError` is the *user's* problem: a one-line message that names what is wrong,
a hint that names the fix, and a distinct process exit code. Anything else that escapes the
library is a bug; the CLI shows its traceback only when ``OPTKIT_DEBUG=1``.

Exit codes (documented in the README):

=====  =======================================================
0      approved: every gate held
1      a gate failed (:class:`GateFailed`)
2      bad input or usage (every other :class:`OptkitError`)
3      internal error (a bug in optkit or a library it calls)
130    stopped by SIGINT (143 SIGTERM, 129 SIGHUP): 128 + the signal number
=====  =======================================================
"""

from __future__ import annotations

import os

EXIT_APPROVED = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class OptkitError(Exception):
    """A problem the user can fix.

    Args:
        message: one line naming the problem (no trailing period needed).
        hint: one line naming the fix, or ``None``.
    """

    exit_code: int = EXIT_BAD_INPUT
    kind: str = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.one_line()

    def one_line(self) -> str:
        """Return ``"<kind>: <message> (hint: <hint>)"`` on a single line."""
        text = f"{self.kind}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return " ".join(text.split())


class UsageError(OptkitError):
    """The command line is wrong: an unknown option, a missing or bad value, or a flag that has no
    effect with the chosen recipe (e.g. ``--calibration-data`` without a ``quantize-static`` pass)."""

    kind = "usage error"


class RecipeError(OptkitError):
    """The recipe (YAML file, built-in name or command-line override) is invalid."""

    kind = "recipe error"


class PlanError(OptkitError):
    """The batch plan (``optkit batch PLAN.yaml``) is invalid, or one of its targets cannot be served
    by any node of the cluster."""

    kind = "plan error"


class SourceModelError(OptkitError):
    """The source model is missing, unreadable, corrupt or of an unsupported kind."""

    kind = "source model error"


class DataError(OptkitError):
    """Validation data is missing, unreadable or does not match the model's inputs."""

    kind = "data error"


class DependencyError(OptkitError):
    """An optional framework or library needed for this run is not installed."""

    kind = "missing dependency"


class ExportError(OptkitError):
    """Exporting the source model to ONNX failed, or the export gives wrong outputs."""

    kind = "export error"


class PassError(OptkitError):
    """An ONNX → ONNX pass failed."""

    kind = "pass error"


class OutputError(OptkitError):
    """The output folder cannot be written (exists without --overwrite, not writable, ...)."""

    kind = "output error"


class SandboxUnavailable(OptkitError):
    """The worker process cannot be confined (no Landlock on this kernel, or confinement failed)."""

    kind = "sandbox unavailable"


class UnsafeModelError(OptkitError):
    """The static scan found code-running or file-touching content in the source model (see
    :mod:`optkit.scan`); the model was not loaded. The hint names the flag that skips the scan."""

    kind = "unsafe model"


class GateFailed(OptkitError):
    """At least one validation gate failed; the artifact is not approved.

    Args:
        message: a summary naming the failed gates.
        result: the :class:`optkit.pipeline.ConvertResult` with every measured figure.
    """

    kind = "gate failed"
    exit_code = EXIT_GATE_FAILED

    def __init__(self, message: str, hint: str | None = None, result: object | None = None) -> None:
        super().__init__(message, hint)
        self.result = result


def missing_dependency(module: str, extra: str) -> DependencyError:
    """Build the error for an optional import that failed.

    Args:
        module: the Python module that could not be imported, e.g. ``"torch"``.
        extra: the optkit extra that installs it, e.g. ``"torch"``.
    """
    return DependencyError(
        f"the '{module}' package is not installed",
        f"pip install -c constraints.txt 'optkit[{extra}]'",
    )


def debug_enabled() -> bool:
    """True when ``OPTKIT_DEBUG`` is set to 1/true/yes (tracebacks and the worker's output shown)."""
    return os.environ.get("OPTKIT_DEBUG", "").lower() in ("1", "true", "yes")
