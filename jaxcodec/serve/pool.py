"""The worker threads that run the codecs, behind a bounded queue.

Coding an image is CPU (or accelerator) work that must not block the event loop, so each
request's work runs on one of ``workers`` threads (JAX and the codecs release the GIL
while they compute). At most ``workers + queue`` requests are admitted at a time: the
rest are refused at once with 503 and a ``Retry-After`` header, so an overloaded server
answers quickly instead of piling up work and memory. A request leaves the count when its
work has finished, not when its client gave up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable, TypeVar

from jaxcodec.serve.errors import Busy

T = TypeVar("T")


class WorkerPool:
    """``workers`` threads and room for ``queue`` waiting requests."""

    def __init__(self, workers: int, queue: int):
        self.workers = int(workers)
        self.capacity = int(workers) + int(queue)
        self._executor = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="jaxcodec-worker")
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Requests running or waiting now."""
        with self._lock:
            return self._admitted

    def _release(self, _: Any = None) -> None:
        with self._lock:
            self._admitted -= 1

    def submit(self, fn: Callable[..., T], *args: Any) -> "concurrent.futures.Future[T]":
        """Admits ``fn(*args)`` or raises :class:`Busy` when the pool and its queue are full."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise Busy(f"server busy: {self.workers} worker(s) and {self.capacity - self.workers} "
                           "queued request(s) already; try again shortly", headers={"Retry-After": "1"})
            self._admitted += 1
        try:
            future = self._executor.submit(fn, *args)
        except RuntimeError:  # shut down
            self._release()
            raise Busy("server is shutting down") from None
        future.add_done_callback(self._release)
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs ``fn(*args)`` on a worker and returns its result (raises :class:`Busy` when full)."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def shutdown(self) -> None:
        """Stops the threads after the work already admitted."""
        self._executor.shutdown(wait=True, cancel_futures=False)
