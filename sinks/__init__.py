"""Bytewax sinks: the database (windows, strays), dead letters and quarantined items."""

from sinks.database import SinkGuard, StoreSink, insight_sink, stray_sink, window_sink
from sinks.database_wait import DatabaseWait, is_unavailable
from sinks.dead_letters import dead_letter, dlq_producer_config
from sinks.quarantine import DeadLetterWriter, quarantined

__all__ = [
    "DatabaseWait",
    "DeadLetterWriter",
    "SinkGuard",
    "StoreSink",
    "dead_letter",
    "dlq_producer_config",
    "insight_sink",
    "is_unavailable",
    "quarantined",
    "stray_sink",
    "window_sink",
]
