"""Run a resolved plan: skip the items that are up to date (:mod:`optkit.batch.resume`), hand the
rest to a runner (:class:`~optkit.batch.runner_local.LocalRunner` or
:class:`~optkit.batch.runner_ray.RayRunner`), collect one :class:`ItemOutcome` per item in plan order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from optkit.batch.outcome import ItemOutcome
from optkit.batch.plan import ResolvedItem
from optkit.batch.resume import up_to_date
from optkit.errors import PlanError


class Runner(Protocol):
    """Runs items and reports each outcome as it finishes (see the two runners)."""

    def describe(self) -> str:
        """How the items run, in a few words."""
        ...

    def run(
        self, items: list[ResolvedItem], report: Callable[[ItemOutcome], bool], on_start: Callable[[str], None]
    ) -> None:
        """Run ``items``; ``report`` each outcome; stop starting items once it returns False."""
        ...


@dataclass
class PlanOutcome:
    """The whole plan's result.

    Attributes:
        items: one outcome per item, in plan order.
        runner: how the items ran (``local, --jobs 2``, ``ray (auto)``).
        seconds: the plan's wall time, seconds.
        interrupted: stopped by Ctrl-C/SIGTERM (items not finished are ``cancelled``).
    """

    items: list[ItemOutcome] = field(default_factory=list)
    runner: str = ""
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def approved(self) -> bool:
        """True when every item has its approved artifact (run now or up to date)."""
        return bool(self.items) and all(o.ok for o in self.items)

    def counts(self) -> dict[str, int]:
        """``{status: number of items}``."""
        found: dict[str, int] = {}
        for outcome in self.items:
            found[outcome.status] = found.get(outcome.status, 0) + 1
        return found


def check_targets_local(items: list[ResolvedItem]) -> None:
    """Refuse an item with a ``target`` when the plan runs without Ray: this machine cannot tell
    whether it is that hardware, and an approval measured elsewhere proves nothing there.

    Raises:
        PlanError: an item names a target.
    """
    named = [i.name for i in items if i.target is not None]
    if named:
        raise PlanError(
            f"plan items {', '.join(named)} name a target, which only a Ray cluster can place",
            "run the plan with --ray ADDRESS (or --ray local), or drop the items' target",
        )


def run_plan(
    items: list[ResolvedItem],
    runner: Runner,
    *,
    force: bool = False,
    keep_going: bool = False,
    on_start: Callable[[str], None] | None = None,
    on_done: Callable[[ItemOutcome], None] | None = None,
) -> PlanOutcome:
    """Run every item that is not up to date with ``runner``.

    Args:
        items: the resolved plan (:func:`optkit.batch.plan.resolve_items`).
        runner: where the items run.
        force: run every item, up to date or not.
        keep_going: run all items even after one fails; without it the first item that is not
            approved stops the plan (what has not finished is ``cancelled``).
        on_start / on_done: told of each item as it starts and as it finishes (skipped ones included).

    Returns:
        The :class:`PlanOutcome`, items in plan order. On Ctrl-C the ``KeyboardInterrupt`` propagates
        with ``outcome`` attached as ``exc.plan_outcome`` (unfinished items ``cancelled``).
    """
    start = time.perf_counter()
    done: dict[str, ItemOutcome] = {}
    todo: list[ResolvedItem] = []
    tell_done = on_done or (lambda outcome: None)
    for item in items:
        why = None if force else up_to_date(item.request)
        if why is None:
            todo.append(item)
            continue
        done[item.name] = ItemOutcome(
            name=item.name,
            status="skipped",
            output=str(item.request.output_dir),
            error="",
            recipe=item.request.recipe.name,
            strict=item.request.strict,
        )
        tell_done(done[item.name])

    def report(outcome: ItemOutcome) -> bool:
        done[outcome.name] = outcome
        tell_done(outcome)
        return keep_going or outcome.ok

    result = PlanOutcome(runner=runner.describe())
    try:
        if todo:
            runner.run(todo, report, on_start or (lambda name: None))
    except KeyboardInterrupt as exc:
        result.interrupted = True
        result.items = _in_order(items, done)
        result.seconds = time.perf_counter() - start
        exc.plan_outcome = result  # type: ignore[attr-defined]  # for the CLI's summary of a stopped plan
        raise
    result.items = _in_order(items, done)
    result.seconds = time.perf_counter() - start
    return result


def _in_order(items: list[ResolvedItem], done: dict[str, ItemOutcome]) -> list[ItemOutcome]:
    return [
        done.get(item.name)
        or ItemOutcome(
            name=item.name,
            status="cancelled",
            output=str(item.request.output_dir),
            recipe=item.request.recipe.name,
            strict=item.request.strict,
        )
        for item in items
    ]
