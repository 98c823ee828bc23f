"""Storage: SQLAlchemy models + Alembic migrations, repositories, cache, Kafka plumbing.

Names are imported on first use (PEP 562): the dataflow process imports ``storage.windows``
alone and should not pay for Redis and the rest at start-up.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "session_scope": "storage.database",
    "ApiKeyRepository": "storage.api_keys",
    "Cache": "storage.cache",
    "EmbeddedBroker": "storage.kafka",
    "InsightRepository": "storage.insights",
    "StrayRepository": "storage.strays",
    "WindowRepository": "storage.windows",
    "create_db_engine": "storage.database",
    "ensure_topics": "storage.kafka",
    "kafka_ping": "storage.kafka",
    "migrate": "storage.database",
    "open_cache": "storage.cache",
    "ping": "storage.database",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'storage' has no attribute {name!r}")
