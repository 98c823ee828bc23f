"""Bytewax sinks: the database (windows, strays) and dead letters."""

from sinks.database import StoreSink, insight_sink, stray_sink, window_sink
from sinks.dead_letters import dead_letter

__all__ = ["StoreSink", "dead_letter", "insight_sink", "stray_sink", "window_sink"]
