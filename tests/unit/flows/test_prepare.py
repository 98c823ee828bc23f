"""flows.prepare without the orchestrator: migrate at start, or wait for ``llmopt migrate``."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from core.settings import ProcessorSettings, Settings, StorageSettings
from flows.prepare import prepare
from storage.database import create_db_engine, head_revision, migrate, schema_revision


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
