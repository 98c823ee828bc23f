"""Stored windows per config version, with paired shadow quality (migration 0007).

Against the real PostgreSQL and the embedded default (a SQLite file): the upsert key includes
``config_version``, NULL included (a correction of a window without a version replaces it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from core.events import LlmCall
from core.stats import PairedQuality, WindowKey, WindowStats
from operators.window_stats import summarize
from storage.database import create_db_engine, migrate
from storage.windows import WindowRepository

pytestmark = pytest.mark.integration
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _window(version: int | None, count: int, shadow: bool = False) -> WindowStats:
    extra = {"quality": 0.5, "shadow_model": "small", "shadow_quality": 1.0} if shadow else {}
    calls = [
        LlmCall(
            event_id=f"{version}-{i}",
            timestamp=T0 + timedelta(seconds=i),
            app="vapp",
            task="t",
            model="m",
            latency_ms=10.0,
            input_tokens=1,
            output_tokens=1,
            cost_usd=0.0,
            config_version=version,
            **extra,  # type: ignore[arg-type]
        )
        for i in range(count)
    ]
    key = WindowKey("vapp", "t", "m", "baseline", version)
    return summarize("tumbling", T0, T0 + timedelta(minutes=1), key, calls)


def _engines(postgres_url: str, tmp_path: Path) -> list[Engine]:
    return [create_db_engine(postgres_url), create_db_engine(f"sqlite:///{tmp_path / 'w.db'}")]


def test_windows_of_each_config_version_are_kept_and_corrected_apart(
    postgres_url: str, tmp_path: Path
) -> None:
    for engine in _engines(postgres_url, tmp_path):
        migrate(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM window_stats WHERE app = 'vapp'")
        repo = WindowRepository(engine)
        repo.upsert([_window(None, 1), _window(3, 2), _window(4, 3, shadow=True)])
        # Corrections: same key, version NULL included, replace; nothing else moves.
        repo.upsert([_window(None, 5), _window(4, 6, shadow=True)])
        stored = list(repo.query(app="vapp"))
        assert [(w.config_version, w.count) for w in stored] == [(None, 5), (3, 2), (4, 6)]
        by_version = {w.config_version: w for w in stored}
        assert by_version[4].shadow == {"small": PairedQuality(6, 3.0, 6.0, 1.5)}
        assert by_version[3].shadow == {}
        assert by_version[None].shadow == {}
        engine.dispose()


def test_migration_0007_goes_down_and_up_again(postgres_url: str, tmp_path: Path) -> None:
    for engine in _engines(postgres_url, tmp_path):
        migrate(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM window_stats WHERE app = 'vapp'")
        WindowRepository(engine).upsert([_window(3, 2), _window(4, 3)])
        config = Config()
        config.set_main_option("script_location", "storage/migrations")
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0006")
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT count FROM window_stats WHERE app = 'vapp'").all()
        assert rows == [(3,)]  # one window per old key: the latest kept
        migrate(engine)
        repo = WindowRepository(engine)
        repo.upsert([_window(5, 4)])
        stored = [(w.config_version, w.count) for w in repo.query(app="vapp")]
        assert stored == [(None, 3), (5, 4)]  # the kept row lost its version
        engine.dispose()
