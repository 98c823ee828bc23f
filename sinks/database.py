"""Bytewax sinks that write to the database in one transaction per batch (idempotent writes).

One sink class; what it writes is the repository method it is given: windows are upserted (a
replay or correction overwrites, never doubles), strays and insights are inserted once per key.

A sink given a :class:`SinkGuard` never stops the dataflow: while the database is away it waits
and retries (:mod:`sinks.database_wait`); when the database refuses a batch for its data, the
batch is written item by item and each item it still refuses is quarantined on the DLQ topic
(:mod:`sinks.quarantine`, header ``stage`` = the sink's name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from sqlalchemy import Engine
from typing_extensions import override

from core.insights import Insight
from core.stats import StrayEvent, WindowStats
from sinks.database_wait import DatabaseWait
from sinks.quarantine import DeadLetterWriter, describe, encode_item, quarantined
from storage.database import create_db_engine
from storage.insights import InsightRepository
from storage.strays import StrayRepository
from storage.windows import WindowRepository

__all__ = ["SinkGuard", "StoreSink", "insight_sink", "stray_sink", "window_sink"]

T = TypeVar("T")
Writer = Callable[[Engine], Callable[[Iterable[T]], int]]


@dataclass(frozen=True)
class SinkGuard:
    """How a sink survives its database: wait while it is away, quarantine what it refuses.

    Attributes:
        name: The sink's name (logs, gauge label, the ``stage`` header of quarantined items).
        max_delay_s: The longest wait between two attempts while the database is away.
        dead_letters: Where refused items go; None: a refused batch raises (as unguarded).
    """

    name: str
    max_delay_s: float = 30.0
    dead_letters: DeadLetterWriter | None = None


def _app_of(item: object) -> str:
    app = getattr(item, "app", "")
    return app if isinstance(app, str) else ""


class _Partition(StatelessSinkPartition[T], Generic[T]):
    def __init__(self, database_url: str, writer: Writer[T], guard: SinkGuard | None) -> None:
        self._engine = create_db_engine(database_url)
        self._write = writer(self._engine)
        self._guard = guard
        self._wait = DatabaseWait(guard.name, guard.max_delay_s) if guard else None

    @override
    def write_batch(self, items: list[T]) -> None:
        wait, guard = self._wait, self._guard
        if wait is None or guard is None:
            self._write(items)
            return
        try:
            wait.run(lambda: self._write(items))
        except Exception as exc:
            if guard.dead_letters is None:
                raise
            if len(items) == 1:
                self._quarantine(guard, guard.dead_letters, items[0], exc)
                return
            # Which item? Each alone (writes are idempotent: those already stored stay once).
            for item in items:
                try:
                    wait.run(lambda item=item: self._write([item]))  # type: ignore[misc]
                except Exception as item_exc:
                    self._quarantine(guard, guard.dead_letters, item, item_exc)

    @staticmethod
    def _quarantine(guard: SinkGuard, dlq: DeadLetterWriter, item: T, exc: Exception) -> None:
        dlq.send(quarantined(encode_item(item), describe(exc), guard.name, app=_app_of(item)))

    @override
    def close(self) -> None:
        self._engine.dispose()


class StoreSink(DynamicSink[T], Generic[T]):
    """Writes each batch with ``writer(engine)``; one engine per worker."""

    def __init__(
        self, database_url: str, writer: Writer[T], guard: SinkGuard | None = None
    ) -> None:
        self._database_url = database_url
        self._writer = writer
        self._guard = guard

    def guarded(self, guard: SinkGuard) -> StoreSink[T]:
        """The same sink, waiting for its database and quarantining what it refuses."""
        return StoreSink(self._database_url, self._writer, guard)

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition[T]:
        return _Partition(self._database_url, self._writer, self._guard)


def window_sink(database_url: str) -> StoreSink[WindowStats]:
    """Closed windows and their corrections."""
    return StoreSink(database_url, lambda e: WindowRepository(e).upsert)


def stray_sink(database_url: str) -> StoreSink[StrayEvent]:
    """Late events and unmatched feedback."""
    return StoreSink(database_url, lambda e: StrayRepository(e).add)


def insight_sink(database_url: str) -> StoreSink[Insight]:
    """Analyzer insights."""
    return StoreSink(database_url, lambda e: InsightRepository(e).add)
