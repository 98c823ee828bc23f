"""What a sink's write retries (the database is away) and what it does not (the data is refused)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DataError, OperationalError

from sinks.database_wait import WAITING_FOR_DATABASE, DatabaseWait, is_unavailable
from storage.kafka import free_port

pytestmark = pytest.mark.integration


def _error(engine: Engine, sql: str) -> Exception:
    with pytest.raises(Exception) as caught, engine.connect() as conn:  # noqa: PT011
        conn.execute(text(sql))
    return caught.value


def test_an_unreachable_database_is_retried_and_refused_data_is_not(postgres_url: str) -> None:
    away = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")
    here = create_engine(postgres_url)
    try:
        refused = _error(away, "SELECT 1")
        assert isinstance(refused, OperationalError)
        assert is_unavailable(refused)
        bad_value = _error(here, "SELECT 'x'::int")
        assert isinstance(bad_value, DataError)
        assert not is_unavailable(bad_value)
        too_large = _error(here, "SELECT array_fill(1, ARRAY[1000000000])")  # SQLSTATE 54000
        assert isinstance(too_large, OperationalError)
        assert not is_unavailable(too_large)  # about the data: quarantine, do not wait
    finally:
        away.dispose()
        here.dispose()


def test_a_write_waits_with_growing_bounded_delays_until_the_database_answers(
    postgres_url: str,
) -> None:
    delays: list[float] = []
    wait = DatabaseWait("windows", max_delay_s=2.0, sleep=delays.append)
    away = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")
    here = create_engine(postgres_url)
    attempts = iter([away] * 5 + [here])
    seen_waiting: list[float] = []

    def write() -> int:
        engine = next(attempts)
        seen_waiting.append(WAITING_FOR_DATABASE.labels("windows")._value.get())
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT 7")).scalar_one())

    try:
        assert wait.run(write) == 7
    finally:
        away.dispose()
        here.dispose()
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]  # min(0.5 s * 2^n, max_delay)
    assert wait.waits == 5
    assert seen_waiting == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # the gauge is up while it waits
    assert WAITING_FOR_DATABASE.labels("windows")._value.get() == 0.0  # and down once back
    with pytest.raises(ZeroDivisionError):  # anything else is the caller's (quarantine)
        wait.run(lambda: 1 // 0)
