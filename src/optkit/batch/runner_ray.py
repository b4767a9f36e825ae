"""Run plan items as Ray tasks (``optkit batch --ray ADDRESS``): one task per item, the whole item
(export, passes, validation, timing, publish) in that task, so that an item with a
``target: {resources: ...}`` is validated and timed on a node that has those resources (its export
and passes run there too: the simplest placement that keeps every figure honest).

Each task calls :func:`optkit.batch.outcome.run_item`, which writes the artifact into the item's
output folder *on the node that ran it*: on a multi-node cluster that folder must be on a file system
every node shares (NFS, a mounted bucket), as docs/scale.md says. The artifact is staged beside its
folder and renamed into place only when complete, so a worker killed mid-task leaves nothing that
claims approval; Ray retries such a task ``retries`` times, and a re-run of the plan makes exactly
the items still missing.

Before anything is submitted, every target is checked against the live nodes' resources
(``ray.nodes()``): a target no node can serve is a :class:`~optkit.errors.PlanError` (exit 2) at
once, not a task that waits forever.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from optkit.batch.outcome import ItemOutcome, run_item, worker_died
from optkit.batch.plan import ResolvedItem
from optkit.errors import PlanError, missing_dependency
from optkit.request import ConvertRequest

Report = Callable[[ItemOutcome], bool]


def import_ray() -> Any:
    """``import ray``, or the :class:`~optkit.errors.DependencyError` naming the extra."""
    try:
        import ray
    except ImportError:
        raise missing_dependency("ray", "ray") from None
    return ray


def run_item_task(name: str, request: ConvertRequest) -> ItemOutcome:
    """The Ray task body: :func:`run_item`, recording the node it ran on."""
    ray = import_ray()
    return run_item(name, request, ray.get_runtime_context().get_node_id())


def connect(address: str) -> bool:
    """Connect to the cluster at ``address`` (``auto``: the one ``ray start`` started here;
    ``local``: start a private one-node cluster in this process); True when this call started the
    connection (and :meth:`RayRunner.close` should end it). An already initialised Ray is reused."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address == "local":
            ray.init(**kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise PlanError(
            f"cannot connect to the Ray cluster at {address}: {(str(exc).splitlines() or [''])[0][:200]}",
            "start one with `ray start --head`, or use --ray local (a cluster in this process) or --jobs N",
        ) from None
    return True


def item_needs(item: ResolvedItem) -> dict[str, float]:
    """The resources ``item``'s task reserves, as Ray names them (1 CPU without a target)."""
    return item.target.ray_resources() if item.target else {"CPU": 1.0}


def check_schedulable(items: list[ResolvedItem], nodes: list[dict]) -> None:
    """Refuse, before submitting anything, an item whose resources no alive node has.

    Args:
        items: the items to run.
        nodes: ``ray.nodes()`` (each with ``Alive`` and its total ``Resources``).

    Raises:
        PlanError: an item's target cannot be served; the message names the item, what it needs and
            what the nodes offer.
    """
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    for item in items:
        need = item_needs(item)
        if any(all(res.get(key, 0.0) >= amount for key, amount in need.items()) for res in alive):
            continue
        offered = sorted({k for res in alive for k in res if not k.startswith(("node:", "object_store", "memory"))})
        raise PlanError(
            f"plan item {item.name}: no node of the Ray cluster has {need} "
            f"({len(alive)} alive node(s) offer: {', '.join(offered) or 'nothing'})",
            "start a node with those resources (ray start --resources='{\"NAME\": 1}'), or change the target",
        )


class RayRunner:
    """Runs items as Ray tasks on the cluster at ``address``.

    Args:
        address: ``local`` (start a private cluster here), ``auto`` or ``HOST:PORT`` (see :func:`connect`).
        retries: how many times Ray reruns a task whose worker died (``max_retries``).
    """

    def __init__(self, address: str, retries: int = 1) -> None:
        self.address, self.retries = address, retries
        self.started = False

    def describe(self) -> str:
        """How the items run, for the summary."""
        return f"ray ({self.address})"

    def check(self, items: list[ResolvedItem]) -> None:
        """Connect and refuse unschedulable targets (:func:`check_schedulable`) before any work."""
        self.started = connect(self.address) or self.started
        check_schedulable(items, import_ray().nodes())

    def close(self) -> None:
        """End the connection this runner started (a reused one is left alone)."""
        if self.started:
            import_ray().shutdown()
            self.started = False

    def run(self, items: list[ResolvedItem], report: Report, on_start: Callable[[str], None]) -> None:
        """Submit every item, :data:`Report` each outcome as it finishes; once ``report`` returns
        False, or on Ctrl-C, cancel the tasks not yet finished (``ray.cancel``)."""
        ray = import_ray()
        self.check(items)
        task = ray.remote(max_retries=self.retries)(run_item_task)
        pending: dict[Any, ResolvedItem] = {}
        for item in items:
            options: dict[str, Any] = {"num_cpus": item_needs(item)["CPU"]}
            if item.target and item.target.resources:
                options["resources"] = dict(item.target.resources)
            if item.target and item.target.accelerator_type:
                options["accelerator_type"] = item.target.accelerator_type
            # placed on a node that has the target: the run says so instead of warning that it was not
            request = dataclasses.replace(item.request, on_target=True) if item.target else item.request
            pending[task.options(**options).remote(item.name, request)] = item
            on_start(item.name)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in done:
                    item = pending.pop(ref)
                    if not report(self._outcome(ray, ref, item)):
                        self._cancel(ray, pending)
                        return
        except BaseException:
            self._cancel(ray, pending)
            raise

    @staticmethod
    def _outcome(ray: Any, ref: Any, item: ResolvedItem) -> ItemOutcome:
        try:
            return ray.get(ref)
        except Exception as exc:  # WorkerCrashedError, TaskCancelledError, a node lost ...
            first = (str(exc).splitlines() or [""])[0][:200]
            return worker_died(item.name, item.request, f"the Ray task died ({type(exc).__name__}: {first})")

    @staticmethod
    def _cancel(ray: Any, pending: dict[Any, ResolvedItem]) -> None:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or already gone: nothing left to cancel
                continue
        pending.clear()
