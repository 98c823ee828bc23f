"""flows.prepare without the orchestrator: migrate at start, or wait for ``llmopt migrate``."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import KafkaSettings, ProcessorSettings, Settings, StorageSettings
from flows.prepare import prepare
from storage.database import create_db_engine, head_revision, migrate, schema_revision
from storage.kafka import free_port


def _settings(tmp_path: Path, *, migrate_on_start: bool) -> Settings:
    return Settings(
        storage=StorageSettings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        processor=dataclasses.replace(ProcessorSettings(), migrate_on_start=migrate_on_start),
    )


def test_migrates_a_fresh_database_at_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path, migrate_on_start=True)
    waits: list[float] = []
    prepare(settings, sleep=waits.append)
    engine = create_db_engine(settings.storage.resolved_database_url)
    assert schema_revision(engine) == head_revision()
    engine.dispose()
    assert waits == []


def test_without_migrate_on_start_it_waits_for_llmopt_migrate_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, migrate_on_start=False)
    engine = create_db_engine(settings.storage.resolved_database_url)
    waits: list[float] = []

    def sleep(delay: float) -> None:  # the operator migrates during the third wait
        waits.append(delay)
        if len(waits) == 3:
            migrate(engine)

    with caplog.at_level(logging.WARNING, logger="flows.prepare"):
        prepare(settings, sleep=sleep)
    assert waits == [0.5, 1.0, 2.0]
    waiting = [r.getMessage() for r in caplog.records if "processor_waiting" in r.getMessage()]
    assert len(waiting) == 3
    assert "run `llmopt migrate`" in waiting[0]
    assert "schema at nothing (empty database)" in waiting[0]
    assert any("processor_ready" in r.getMessage() for r in caplog.records)
    engine.dispose()


class _GaveUpError(Exception):
    """Raised by the injected sleep to end a wait that would last forever."""


def _sleep_then_give_up(waits: list[float], after: int) -> Callable[[float], None]:
    def sleep(delay: float) -> None:
        waits.append(delay)
        if len(waits) >= after:
            raise _GaveUpError

    return sleep


def test_an_unreachable_database_is_waited_for_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        storage=StorageSettings(
            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
            data_dir=str(tmp_path),
        )
    )
    waits: list[float] = []
    with caplog.at_level(logging.WARNING, logger="flows.prepare"), pytest.raises(_GaveUpError):
        prepare(settings, sleep=_sleep_then_give_up(waits, 3))
    assert waits == [0.5, 1.0, 2.0]
    messages = [r.getMessage() for r in caplog.records if r.name == "flows.prepare"]
    assert all("what=database schema (migrating)" in m for m in messages), messages


def test_an_unreachable_broker_is_waited_for_after_the_schema(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = dataclasses.replace(
        _settings(tmp_path, migrate_on_start=True),
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"),
    )
    waits: list[float] = []
    with caplog.at_level(logging.WARNING, logger="flows.prepare"), pytest.raises(_GaveUpError):
        prepare(settings, sleep=_sleep_then_give_up(waits, 1))
    engine = create_db_engine(settings.storage.resolved_database_url)
    assert schema_revision(engine) == head_revision()  # the schema came first
    engine.dispose()
    # only this module's records: a slow machine may add other loggers' warnings
    (message,) = [r.getMessage() for r in caplog.records if r.name == "flows.prepare"]
    assert f"what=kafka topics at {settings.kafka.bootstrap_servers}" in message
