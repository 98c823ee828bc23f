"""The micro-batching a task's ``batching`` override turns on.

:class:`Batcher` collects items submitted from any thread and hands them to ``run_batch`` in
groups of at most ``max_batch_size``, sending a group when it is full or when its oldest item
has waited ``max_wait_ms``. Each submitter gets a :class:`concurrent.futures.Future` of its
own result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Groups submitted items into batches; see the module docstring.

    Args:
        run_batch: Called on the batcher's thread with each batch; returns one result per item
            in order (an exception fails every item of the batch).
        max_batch_size: Most items per batch (>= 1).
        max_wait_ms: Longest time the first item of a batch waits for others.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[T]], Sequence[R]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
    ) -> None:
        if max_batch_size < 1 or max_wait_ms <= 0:
            raise ValueError("a batcher needs max_batch_size >= 1 and max_wait_ms > 0")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self._items: list[tuple[T, Future[R]]] = []
        self._first_at = 0.0
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="llmopt-batcher", daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        """Queue ``item``; its future resolves with its result."""
        future: Future[R] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            if not self._items:
                self._first_at = time.monotonic()
            self._items.append((item, future))
            self._cond.notify()
        return future

    def close(self) -> None:
        """Send what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _next(self) -> list[tuple[T, Future[R]]] | None:
        with self._cond:
            while True:
                if self._items:
                    full = len(self._items) >= self.max_batch_size
                    left = self._first_at + self.max_wait_s - time.monotonic()
                    if full or left <= 0 or self._closed:
                        batch = self._items[: self.max_batch_size]
                        self._items = self._items[self.max_batch_size :]
                        self._first_at = time.monotonic()
                        return batch
                    self._cond.wait(left)
                elif self._closed:
                    return None
                else:
                    self._cond.wait()

    def _run(self) -> None:
        while (batch := self._next()) is not None:
            self.batches += 1
            try:
                results = self._run_batch([item for item, _ in batch])
                if len(results) != len(batch):
                    raise ValueError(f"run_batch returned {len(results)} results for {len(batch)}")
            except Exception as exc:  # every caller of the batch gets the error
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
