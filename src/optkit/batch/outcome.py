"""What one plan item came to (:class:`ItemOutcome`), and :func:`run_item`: the library call every
runner makes for one item (in this process, in a local worker process, or in a Ray task).

An outcome is small and picklable (it crosses process and node boundaries): the verdict, the gates,
the error line and the host that measured, never the models or arrays.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Literal

from optkit.errors import OptkitError
from optkit.request import ConvertRequest
from optkit.validation.gates import GateResult

Status = Literal["approved", "rejected", "error", "skipped", "cancelled"]


@dataclass
class ItemOutcome:
    """One item's result.

    Attributes:
        name: the item's name (unique within the plan).
        status: ``approved`` (artifact published), ``rejected`` (a gate failed: no artifact),
            ``error`` (bad input, a crash, a killed worker: no artifact), ``skipped`` (its artifact
            is up to date, see :mod:`optkit.batch.resume`) or ``cancelled`` (not run: Ctrl-C, or an
            earlier failure without ``--keep-going``).
        output: the artifact folder (written only when approved).
        seconds: the item's wall time where it ran, seconds (0 when skipped or cancelled).
        gates: every gate's verdict (empty on error).
        strict: the run was strict (a skipped gate fails it).
        error: the one-line error (``kind: message (hint: ...)``), or "".
        exit_code: what ``optkit convert`` would have exited with (0, 1, 2, 3).
        host: the host name that ran (and measured) it, "" when not run.
        node_id: the Ray node id, or None.
        recipe: the recipe's name.
    """

    name: str
    status: Status
    output: str
    seconds: float = 0.0
    gates: list[GateResult] = field(default_factory=list)
    strict: bool = False
    error: str = ""
    exit_code: int = 0
    host: str = ""
    node_id: str | None = None
    recipe: str = ""

    @property
    def ok(self) -> bool:
        """True when the item has its approved artifact (run now, or skipped as up to date)."""
        return self.status in ("approved", "skipped")

    def to_dict(self) -> dict:
        """JSON-ready form (``summary.json``)."""
        from dataclasses import asdict

        return asdict(self)


def worker_died(name: str, request: ConvertRequest, what: str) -> ItemOutcome:
    """The outcome of an item whose worker (a pool process, a Ray task) died mid-run: nothing was
    published, since the artifact is staged and renamed into place only when complete.

    Args:
        name / request: the item.
        what: what died, e.g. ``"the worker process running this item died (BrokenProcessPool)"``.
    """
    return ItemOutcome(
        name=name,
        status="error",
        output=str(request.output_dir),
        error=f"worker error: {what}; nothing was published (hint: run the plan again: it makes only "
        "the missing items)",
        exit_code=3,
        strict=request.strict,
        recipe=request.recipe.name,
    )


def run_item(name: str, request: ConvertRequest, node_id: str | None = None) -> ItemOutcome:
    """Run one item as ``optkit convert`` would (:func:`optkit.pipeline.run_request`) and report it.

    An :class:`~optkit.errors.OptkitError` becomes an ``error`` outcome with its line and exit code; any
    other exception an ``error`` with exit code 3 (a bug); Ctrl-C/SIGTERM propagate.

    Args:
        name: the item's name.
        request: the resolved request.
        node_id: the Ray node id the caller runs on (recorded in the outcome), or None.
    """
    from optkit.pipeline import run_request

    start = time.perf_counter()
    host = socket.gethostname()

    def outcome(status: Status, **more) -> ItemOutcome:
        return ItemOutcome(
            name=name,
            status=status,
            output=str(request.output_dir),
            seconds=time.perf_counter() - start,
            strict=request.strict,
            host=host,
            node_id=node_id,
            recipe=request.recipe.name,
            **more,
        )

    try:
        result = run_request(request)
    except OptkitError as exc:
        return outcome("error", error=exc.one_line(), exit_code=exc.exit_code)
    except Exception as exc:  # a bug in optkit or a library: reported as the CLI reports it (exit 3)
        first = (str(exc).splitlines() or [""])[0][:300]
        return outcome("error", error=f"internal error: {type(exc).__name__}: {first}", exit_code=3)
    return outcome(
        "approved" if result.approved else "rejected", gates=list(result.gates), exit_code=0 if result.approved else 1
    )
