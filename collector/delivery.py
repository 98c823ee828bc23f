"""Getting admitted records into Kafka without losing any: queue, breaker, spill, replay.

:meth:`Delivery.submit` admits a batch (or refuses it: backpressure), queues it and returns
once the batch is *durable*: confirmed by Kafka, or fsynced to the spill buffer. One drain
task takes batches off the queue in order: while the breaker is closed and nothing is spilled
they are produced (several batches in flight); otherwise they are appended to the spill buffer,
so that they never overtake what was spilled before them. Records Kafka did not confirm are
spilled too. A replay task delivers the spill buffer oldest segment first whenever the breaker
allows (in half-open, the oldest segment is the probe) and removes each segment once every
record of it is confirmed. A batch that fits neither Kafka nor the spill buffer is refused
whole (``OverloadedError``, cause ``buffer_full``): the client keeps it and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from collector.backpressure import Watermarks
from collector.breaker import BreakerState, CircuitBreaker
from collector.kafka_sender import KafkaSender
from collector.metrics import CollectorMetrics
from collector.records import OutRecord
from collector.spill import SpillBuffer, SpillFullError
from core.errors import OverloadedError

__all__ = ["Delivery"]

_log = structlog.get_logger(__name__)
_MERGE_RECORDS = 5000  # records merged into one produce round


@dataclass(slots=True)
class _Pending:
    records: Sequence[OutRecord]
    future: asyncio.Future[None]


class Delivery:
    """Owns the Kafka sender, the breaker, the spill buffer and the admission watermarks."""

    def __init__(
        self,
        sender: KafkaSender,
        spill: SpillBuffer,
        breaker: CircuitBreaker,
        marks: Watermarks,
        metrics: CollectorMetrics,
        *,
        adopt: Callable[[], int] | None = None,
        adopt_interval_s: float = 30.0,
    ) -> None:
        self._sender = sender
        self._adopt = adopt
        self._adopt_interval_s = adopt_interval_s
        self._adopter: asyncio.Task[None] | None = None
        self._spill = spill
        self._breaker = breaker
        self._marks = marks
        self._metrics = metrics
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._spill_lock = asyncio.Lock()
        self._replay_wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._drain: asyncio.Task[None] | None = None
        self._replay: asyncio.Task[None] | None = None
        self._refresh_spill_gauges()

    async def start(self) -> None:
        """Start the sender, the drain task and the replay task (which replays old spills)."""
        self._sender.start()
        self._drain = asyncio.create_task(self._drain_forever(), name="collector-drain")
        self._replay = asyncio.create_task(self._replay_forever(), name="collector-replay")
        self._replay_wakeup.set()
        if self._adopt is not None:
            self._adopter = asyncio.create_task(self._adopt_forever(), name="collector-adopt")

    async def stop(self, grace: float = 10.0) -> None:
        """Finish what was admitted (delivered or spilled), then stop; spills stay on disk."""
        deadline = asyncio.get_running_loop().time() + grace
        loop = asyncio.get_running_loop()
        while (self._marks.depth or self._tasks) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for task in (self._adopter, self._drain, self._replay, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._drain = self._replay = self._adopter = None
        await self._sender.close(grace=2.0)
        self._spill.close()  # its folder is free for the next owner

    async def submit(self, records: Sequence[OutRecord]) -> None:
        """Admit ``records`` and wait until they are delivered or spilled.

        Raises:
            OverloadedError: Refused by backpressure, or neither Kafka nor the spill buffer
                could take the batch (nothing of it is kept then).
        """
        if not records:
            return
        wait = self._marks.try_admit(len(records))
        if wait:
            raise OverloadedError(
                f"collector queue above its high watermark ({self._marks.depth} events waiting)",
                retry_after=wait,
                cause="backpressure",
            )
        self._metrics.queue_depth.set(self._marks.depth)
        pending = _Pending(records, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        await asyncio.shield(pending.future)

    def on_brokers_down(self) -> None:
        """Every broker is down (librdkafka): with records in flight, open and fail them."""
        if self._marks.depth == 0 or self._breaker.state is BreakerState.OPEN:
            return
        _log.warning("kafka_brokers_down_breaker_open", in_flight=self._marks.depth)
        self._breaker.trip()
        self._track(self._sender.purge())

    def health(self) -> dict[str, str]:
        """Breaker, spill buffer and queue, as strings for the health detail."""
        return {
            "breaker": self._breaker.state.value,
            "consecutive_failures": str(self._breaker.consecutive_failures),
            "spill_records": str(self._spill.records),
            "spill_bytes": str(self._spill.size_bytes),
            "queue_depth": str(self._marks.depth),
            "saturated": str(self._marks.saturated).lower(),
        }

    # ---- internals ---------------------------------------------------------------------

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refresh_spill_gauges(self) -> None:
        self._metrics.spill_bytes.set(self._spill.size_bytes)
        self._metrics.spill_events.set(self._spill.records)

    def _finish(self, pendings: Sequence[_Pending], error: BaseException | None = None) -> None:
        for p in pendings:
            self._marks.release(len(p.records))
            if not p.future.done():
                if error is None:
                    p.future.set_result(None)
                else:
                    p.future.set_exception(error)
        self._metrics.queue_depth.set(self._marks.depth)

    async def _take(self) -> list[_Pending]:
        pendings = [await self._queue.get()]
        size = len(pendings[0].records)
        while size < _MERGE_RECORDS and not self._queue.empty():
            pendings.append(self._queue.get_nowait())
            size += len(pendings[-1].records)
        return pendings

    async def _probe(self) -> bool:
        """Whether to produce now; before a half-open probe, start a fresh producer."""
        if not self._breaker.allow():
            return False
        if self._breaker.state is BreakerState.HALF_OPEN:
            await self._sender.reset()
        return True

    async def _drain_forever(self) -> None:
        while True:
            pendings = await self._take()
            if self._spill.empty and await self._probe():
                self._track(self._deliver(pendings))
            else:
                await self._to_spill(pendings, [r for p in pendings for r in p.records])

    async def _deliver(self, pendings: list[_Pending]) -> None:
        records = [r for p in pendings for r in p.records]
        flags = await self._sender.send(records)
        failed = [r for r, ok in zip(records, flags, strict=True) if not ok]
        self._metrics.delivered.inc(len(records) - len(failed))
        if not failed:
            self._breaker.record_success()
            self._finish(pendings)
            return
        self._breaker.record_failure()
        _log.warning("kafka_delivery_failed", failed=len(failed), errors=self._sender.last_errors)
        await self._to_spill(pendings, failed)

    async def _to_spill(self, pendings: list[_Pending], records: list[OutRecord]) -> None:
        try:
            async with self._spill_lock:
                await asyncio.to_thread(self._spill.append, records)
        except SpillFullError as exc:
            retry = max(self._breaker.retry_in(), 5.0)
            self._finish(
                pendings, OverloadedError(str(exc), retry_after=retry, cause="buffer_full")
            )
            return
        self._metrics.spilled.inc(len(records))
        self._refresh_spill_gauges()
        self._replay_wakeup.set()
        self._finish(pendings)

    async def _adopt_forever(self) -> None:
        """Adopt orphaned spill folders now and every ``adopt_interval_s`` (see spill_owner)."""
        assert self._adopt is not None
        while True:
            async with self._spill_lock:
                try:
                    moved = await asyncio.to_thread(self._adopt)
                except OSError as exc:
                    _log.warning("spill_adoption_failed", error=str(exc))
                    moved = 0
            if moved:
                self._refresh_spill_gauges()
                self._replay_wakeup.set()
            await asyncio.sleep(self._adopt_interval_s)

    async def _replay_forever(self) -> None:
        while True:
            if self._spill.empty:
                self._replay_wakeup.clear()
                await self._replay_wakeup.wait()
                continue
            wait = self._breaker.retry_in()
            if wait > 0:
                await asyncio.sleep(min(wait, 1.0))
                continue
            if not await self._probe():
                await asyncio.sleep(0.05)
                continue
            await self._replay_oldest()

    async def _replay_oldest(self) -> None:
        async with self._spill_lock:
            oldest = await asyncio.to_thread(self._spill.oldest)
        if oldest is None:
            self._breaker.record_success()
            return
        seq, records = oldest
        flags = await self._sender.send(records)
        remaining = [r for r, ok in zip(records, flags, strict=True) if not ok]
        async with self._spill_lock:
            await asyncio.to_thread(self._spill.rewrite, seq, remaining)
        delivered = len(records) - len(remaining)
        self._metrics.delivered.inc(delivered)
        self._metrics.replayed.inc(delivered)
        self._refresh_spill_gauges()
        if remaining:
            self._breaker.record_failure()
            _log.warning("spill_replay_failed", remaining=len(remaining))
        else:
            self._breaker.record_success()
            _log.info("spill_segment_replayed", records=len(records), left=self._spill.records)
