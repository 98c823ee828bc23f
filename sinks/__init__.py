"""Bytewax sinks: the database (windows, strays) and dead letters."""

from sinks.database import InsightStoreSink, StrayStoreSink, WindowStoreSink
from sinks.dead_letters import dead_letter

__all__ = ["InsightStoreSink", "StrayStoreSink", "WindowStoreSink", "dead_letter"]
