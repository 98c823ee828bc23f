"""Bytewax sinks: the database (windows, strays) and dead letters."""

from sinks.database import StoreSink, insight_sink, stray_sink, window_sink
from sinks.dead_letters import dead_letter, dlq_producer_config

__all__ = [
    "StoreSink",
    "dead_letter",
    "dlq_producer_config",
    "insight_sink",
    "stray_sink",
    "window_sink",
]
