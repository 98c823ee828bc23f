"""Bytewax sinks that write to the database in one transaction per batch (idempotent upserts)."""

from __future__ import annotations

from collections.abc import Callable
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

__all__ = ["InsightStoreSink", "StrayStoreSink", "WindowStoreSink"]

T = TypeVar("T")


class _Partition(StatelessSinkPartition[T], Generic[T]):
    def __init__(self, database_url: str, writer: Callable[[Engine], Callable[[list[T]], int]]):
        self._engine = create_db_engine(database_url)
        self._write = writer(self._engine)

    @override
    def write_batch(self, items: list[T]) -> None:
        self._write(items)

    @override
    def close(self) -> None:
        self._engine.dispose()


class WindowStoreSink(DynamicSink[WindowStats]):
    """Closed windows and their corrections: a replay overwrites, never doubles."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition[WindowStats]:
        return _Partition(self._database_url, lambda e: WindowRepository(e).upsert)


class StrayStoreSink(DynamicSink[StrayEvent]):
    """Late events and unmatched feedback, one row per event id and kind."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition[StrayEvent]:
        return _Partition(self._database_url, lambda e: StrayRepository(e).add)


class InsightStoreSink(DynamicSink[Insight]):
    """Analyzer insights, one row per stable id (a replay writes nothing new)."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition[Insight]:
        return _Partition(self._database_url, lambda e: InsightRepository(e).add)
