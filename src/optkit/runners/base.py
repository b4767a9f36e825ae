"""The runner lifecycle (after Polygraphy's ``BaseRunner``): activate → infer … → deactivate."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

Feeds = dict[str, np.ndarray]


class Runner(ABC):
    """Executes one model on numpy inputs.

    Attributes:
        name: shown in reports, e.g. ``"PyTorch (torchscript)"`` or ``"ONNX Runtime"``.
        device: ``"cpu"`` or ``"cuda"``.
        threads: intra-op thread count used for inference.
        load_seconds: wall time of :meth:`activate` (model load / session creation), seconds.
    """

    name: str = "runner"

    def __init__(self, threads: int, device: str = "cpu") -> None:
        self.threads = threads
        self.device = device
        self.load_seconds = 0.0
        self.active = False

    def activate(self) -> None:
        """Load the model (timed into ``load_seconds``). Idempotent."""
        if self.active:
            return
        start = time.perf_counter()
        self._activate()
        self.load_seconds = time.perf_counter() - start
        self.active = True

    def infer(self, feeds: Feeds) -> Feeds:
        """Run one batch.

        Args:
            feeds: ``{input name: array}``; arrays share the batch axis 0.

        Returns:
            ``{output name: float/int array}`` on the host (numpy), in the model's output order.
        """
        self.activate()
        return self._infer(feeds)

    def time_calls(self, feeds: Feeds, warmup: int, iterations: int) -> list[float]:
        """``warmup`` untimed calls, then ``iterations`` timed calls (``time.perf_counter``);
        returns seconds per call. Checks for Ctrl-C between calls. Runners that execute elsewhere
        (a worker process) run this loop there, so that no message passing is timed."""
        from optkit import interrupts

        for _ in range(warmup):
            interrupts.check()
            self.infer(feeds)
        times = []
        for _ in range(iterations):
            interrupts.check()
            start = time.perf_counter()
            self.infer(feeds)
            times.append(time.perf_counter() - start)
        return times

    def time_pass(self, batches: list[Feeds], warm: bool) -> float:
        """One timed call per batch, in order (after one untimed call of each batch when ``warm``);
        returns the total seconds of the timed calls (``time.perf_counter``). Checks for Ctrl-C
        between calls. Runners that execute elsewhere run this loop there, in one request, so that
        neither message passing nor a thread pool idling between requests is timed."""
        from optkit import interrupts

        total = 0.0
        for batch in batches:
            interrupts.check()
            if warm:
                self.infer(batch)
            start = time.perf_counter()
            self.infer(batch)
            total += time.perf_counter() - start
        return total

    def process_rss_mb(self) -> float:
        """Resident set size (MB, 10^6 bytes) of the process this runner executes in (psutil)."""
        import psutil

        return psutil.Process().memory_info().rss / 1e6

    def process_id(self) -> int:
        """The id of the process this runner executes in (this one; a worker's for the source)."""
        import os

        return os.getpid()

    def deactivate(self) -> None:
        """Release the model."""
        self._deactivate()
        self.active = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    @abstractmethod
    def _activate(self) -> None: ...

    @abstractmethod
    def _infer(self, feeds: Feeds) -> Feeds: ...

    def _deactivate(self) -> None:
        return None
