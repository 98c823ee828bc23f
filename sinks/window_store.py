"""Bytewax sink that writes closed windows to the database (idempotent upserts per batch)."""

from __future__ import annotations

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from typing_extensions import override

from core.stats import WindowStats
from storage.database import create_db_engine
from storage.windows import WindowRepository

__all__ = ["WindowStoreSink"]


class _Partition(StatelessSinkPartition[WindowStats]):
    def __init__(self, database_url: str) -> None:
        self._engine = create_db_engine(database_url)
        self._repo = WindowRepository(self._engine)

    @override
    def write_batch(self, items: list[WindowStats]) -> None:
        self._repo.upsert(items)

    @override
    def close(self) -> None:
        self._engine.dispose()


class WindowStoreSink(DynamicSink[WindowStats]):
    """Writes each batch of windows in one transaction; a replay overwrites, never doubles."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self._database_url)
