"""Waiting for the database: a sink whose database is away retries with backoff, never raises.

A write that fails because the database cannot be reached (connection refused, the server shut
down, a dropped connection, a pool timeout) is retried after ``min(0.5 s * 2^n, max_delay)``,
for as long as it takes. The dataflow waits with it (Kafka keeps the input; nothing is read
that cannot be written), and every write is idempotent, so a write retried after a commit whose
answer was lost stores nothing twice. While waiting, the gauge
``llmopt_processor_waiting_for_database{sink}`` is 1 and each attempt is logged.

Any other error is about the data and is raised to the caller (which quarantines the items).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import Counter, Gauge
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

__all__ = ["DB_RETRIES", "WAITING_FOR_DATABASE", "DatabaseWait", "is_unavailable"]

_log = logging.getLogger(__name__)
R = TypeVar("R")

WAITING_FOR_DATABASE = Gauge(
    "llmopt_processor_waiting_for_database",
    "1 while a sink of the processor waits for the database to come back",
    ["sink"],
)
DB_RETRIES = Counter(
    "llmopt_processor_database_retries",
    "Writes retried because the database could not be reached",
    ["sink"],
)


#: SQLSTATE classes that psycopg reports as operational errors but that are about the data
#: (54: program limit exceeded, e.g. an index row or an array too large): retrying cannot help.
_DATA_CLASSES = ("54",)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is away (retry), not that it refused the data."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, PoolTimeoutError):
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return not (isinstance(sqlstate, str) and sqlstate[:2] in _DATA_CLASSES)


class DatabaseWait:
    """Runs a database call again and again while the database is away.

    Args:
        sink: The name in logs and in the gauge's ``sink`` label.
        max_delay_s: The longest wait between attempts.
        sleep: Injected for tests.
    """

    def __init__(
        self, sink: str, max_delay_s: float = 30.0, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._sink = sink
        self._max_delay_s = max_delay_s
        self._sleep = sleep
        self.waits = 0  # attempts that found the database away, over this object's life

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (0-based): ``min(0.5 * 2^n, max_delay)``."""
        return min(0.5 * 2.0 ** min(attempt, 32), self._max_delay_s)

    def run(self, call: Callable[[], R]) -> R:
        """Return ``call()``, retrying while the database is away; other errors are raised."""
        attempt = 0
        while True:
            try:
                result = call()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                delay = self.delay(attempt)
                self.waits += 1
                WAITING_FOR_DATABASE.labels(self._sink).set(1)
                DB_RETRIES.labels(self._sink).inc()
                _log.warning(
                    "waiting_for_database sink=%s attempt=%d retry_in_s=%.1f error=%s",
                    self._sink,
                    attempt + 1,
                    delay,
                    str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
                )
                self._sleep(delay)
                attempt += 1
                continue
            if attempt:
                WAITING_FOR_DATABASE.labels(self._sink).set(0)
                _log.warning("database_back sink=%s after_attempts=%d", self._sink, attempt)
            return result
