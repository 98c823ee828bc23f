"""Bytewax sinks that write to the database in one transaction per batch (idempotent writes).

One sink class; what it writes is the repository method it is given: windows are upserted (a
replay or correction overwrites, never doubles), strays and insights are inserted once per key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from sqlalchemy import Engine
from typing_extensions import override

from core.insights import Insight
from core.stats import StrayEvent, WindowStats
from storage.database import create_db_engine
from storage.insights import InsightRepository
from storage.strays import StrayRepository
from storage.windows import WindowRepository

__all__ = ["StoreSink", "insight_sink", "stray_sink", "window_sink"]

T = TypeVar("T")
Writer = Callable[[Engine], Callable[[Iterable[T]], int]]


class _Partition(StatelessSinkPartition[T], Generic[T]):
    def __init__(self, database_url: str, writer: Writer[T]) -> None:
        self._engine = create_db_engine(database_url)
        self._write = writer(self._engine)

    @override
    def write_batch(self, items: list[T]) -> None:
        self._write(items)

    @override
    def close(self) -> None:
        self._engine.dispose()


class StoreSink(DynamicSink[T], Generic[T]):
    """Writes each batch with ``writer(engine)``; one engine per worker."""

    def __init__(self, database_url: str, writer: Writer[T]) -> None:
        self._database_url = database_url
        self._writer = writer

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition[T]:
        return _Partition(self._database_url, self._writer)


def window_sink(database_url: str) -> StoreSink[WindowStats]:
    """Closed windows and their corrections."""
    return StoreSink(database_url, lambda e: WindowRepository(e).upsert)


def stray_sink(database_url: str) -> StoreSink[StrayEvent]:
    """Late events and unmatched feedback."""
    return StoreSink(database_url, lambda e: StrayRepository(e).add)


def insight_sink(database_url: str) -> StoreSink[Insight]:
    """Analyzer insights."""
    return StoreSink(database_url, lambda e: InsightRepository(e).add)
