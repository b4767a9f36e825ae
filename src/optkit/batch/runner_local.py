"""Run plan items on this machine: one at a time in this process (``--jobs 1``, the default), or
``--jobs N`` at a time in local worker processes (:class:`concurrent.futures.ProcessPoolExecutor`,
``spawn`` start method: no forked copies of an ONNX Runtime or PyTorch already loaded here). Each
item is the same library call, :func:`optkit.batch.outcome.run_item`; no Ray is needed.

A worker process that dies (killed, out of memory) breaks the pool: the items it and the pool still
held are reported as ``error`` (they published nothing: the artifact is renamed into place only when
complete), and a re-run of the plan makes exactly those.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from optkit.batch.outcome import ItemOutcome, run_item, worker_died
from optkit.batch.plan import ResolvedItem

#: called with each finished item; returns False to stop starting new items
Report = Callable[[ItemOutcome], bool]


def _died(item: ResolvedItem, exc: BaseException) -> ItemOutcome:
    return worker_died(item.name, item.request, f"the worker process running this item died ({type(exc).__name__})")


class LocalRunner:
    """Runs items on this machine, ``jobs`` at a time.

    Args:
        jobs: items at once (1 = in this process, in plan order).
    """

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = max(1, int(jobs))

    def describe(self) -> str:
        """How the items run, for the summary (``local, --jobs N``)."""
        return f"local, --jobs {self.jobs}"

    def run(self, items: list[ResolvedItem], report: Report, on_start: Callable[[str], None]) -> None:
        """Run ``items`` and :data:`Report` each outcome as it finishes; stop starting items once
        ``report`` returns False. Ctrl-C (``KeyboardInterrupt``) cancels what has not started, stops
        the worker processes and propagates."""
        if self.jobs == 1:
            for item in items:
                on_start(item.name)
                if not report(run_item(item.name, item.request)):
                    return
            return
        self._pool(items, report, on_start)

    def _pool(self, items: list[ResolvedItem], report: Report, on_start: Callable[[str], None]) -> None:
        pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"))
        pending: dict[Future, ResolvedItem] = {}
        queue = list(items)
        stop = False
        try:
            while queue and len(pending) < self.jobs:
                item = queue.pop(0)
                pending[pool.submit(run_item, item.name, item.request)] = item
                on_start(item.name)
            while pending:
                done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool as exc:
                        outcome = _died(item, exc)
                    stop = stop or not report(outcome)
                broken = any(isinstance(f.exception(), BrokenProcessPool) for f in done if not f.cancelled())
                if broken:  # a dead worker broke the pool: finish the rest in a fresh one
                    pool.shutdown(wait=False, cancel_futures=True)
                    for item in list(pending.values()):
                        stop = stop or not report(_died(item, BrokenProcessPool("pool broken")))
                    pending.clear()
                    pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"))
                while not stop and queue and len(pending) < self.jobs:
                    item = queue.pop(0)
                    pending[pool.submit(run_item, item.name, item.request)] = item
                    on_start(item.name)
        except BaseException:
            _stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the worker processes (Ctrl-C, SIGTERM): each one's
    staging folder is removed by its own signal handling, or never renamed into place."""
    pool.shutdown(wait=False, cancel_futures=True)
    processes = dict(getattr(pool, "_processes", None) or {})  # no public handle on the workers
    for process in processes.values():
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes.values():
        process.join(max(0.0, deadline - time.monotonic()))
