"""What the dataflow needs before it reads: its topics and the database schema.

``python -m bytewax.run flows.main`` is meant to run on its own (by hand, in Compose, in a
StatefulSet), without the orchestrator having prepared anything. Each process therefore, at
start:

- brings the schema to head (:func:`storage.database.migrate`, which holds a lock shared by
  every process that migrates, so a cluster starting at once on a fresh database is safe), or,
  with ``processor.migrate_on_start = false``, waits until an operator's ``llmopt migrate`` has;
- then creates the telemetry and dead-letter topics when they are missing (idempotent; a topic
  that exists is kept as it is).

While the broker or the database cannot be reached it waits, logging each attempt with what it
waits for, with backoff ``min(0.5 s * 2^n, processor.database_retry_max_delay)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core.errors import StorageUnavailableError
from core.settings import Settings
from sinks.database_wait import is_unavailable
from storage.database import create_db_engine, head_revision, migrate, schema_revision
from storage.kafka import ensure_topics, topic_configs

__all__ = ["SchemaNotReadyError", "prepare"]

_log = logging.getLogger(__name__)


class SchemaNotReadyError(StorageUnavailableError):
    """The schema is not at the revision this code needs (and this process does not migrate)."""


def _database_away(exc: StorageUnavailableError) -> bool:
    """Whether a database error is worth waiting out (unreachable, or not migrated yet)."""
    if isinstance(exc, SchemaNotReadyError):
        return True
    cause = exc.__cause__
    return cause is None or is_unavailable(cause)


def _until_done(
    what: str,
    call: Callable[[], object],
    max_delay_s: float,
    sleep: Callable[[float], None],
    retryable: Callable[[StorageUnavailableError], bool] = _database_away,
) -> None:
    attempt = 0
    while True:
        try:
            call()
        except StorageUnavailableError as exc:
            if not retryable(exc):
                raise
            delay = min(0.5 * 2.0 ** min(attempt, 32), max_delay_s)
            _log.warning(
                "processor_waiting what=%s attempt=%d retry_in_s=%.1f reason=%s",
                what,
                attempt + 1,
                delay,
                str(exc).splitlines()[0][:300],
            )
            sleep(delay)
            attempt += 1
            continue
        if attempt:
            _log.warning("processor_ready what=%s after_attempts=%d", what, attempt)
        return


def prepare(settings: Settings, sleep: Callable[[float], None] = time.sleep) -> None:
    """Create the topics and migrate (or await) the schema; waits while either is away.

    Args:
        settings: The dataflow's settings.
        sleep: Injected for tests.

    Raises:
        StorageUnavailableError: A migration failed for a reason other than an unreachable
            database (a bug to fix, not a wait).
    """
    kafka = settings.kafka
    max_delay = settings.processor.database_retry_max_delay.total_seconds()
    engine = create_db_engine(settings.storage.resolved_database_url)
    try:
        if settings.processor.migrate_on_start:
            _until_done("database schema (migrating)", lambda: migrate(engine), max_delay, sleep)
        else:
            head = head_revision()
            _until_done(
                f"database schema at {head} (processor.migrate_on_start is false: "
                "run `llmopt migrate`)",
                lambda: _at(engine_revision=schema_revision(engine), head=head),
                max_delay,
                sleep,
            )
    finally:
        engine.dispose()
    if kafka.bootstrap_servers:
        topics = {kafka.telemetry_topic: kafka.partitions, kafka.dlq_topic: kafka.partitions}
        _until_done(
            f"kafka topics at {kafka.bootstrap_servers}",
            lambda: _created(
                ensure_topics(kafka.bootstrap_servers, topics, configs=topic_configs(kafka))
            ),
            max_delay,
            sleep,
            retryable=lambda _exc: True,  # an unreachable broker, or one that refused for now
        )


def _created(names: list[str]) -> None:
    if names:
        _log.warning("kafka topics %s were missing: created", names)


def _at(*, engine_revision: str | None, head: str) -> None:
    if engine_revision != head:
        raise SchemaNotReadyError(
            f"schema at {engine_revision or 'nothing (empty database)'}, this code needs {head}"
        )
