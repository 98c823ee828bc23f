"""Storage: SQLAlchemy models + Alembic migrations, repositories, cache, Kafka plumbing."""

from storage.api_keys import ApiKeyRepository
from storage.cache import Cache, open_cache
from storage.database import create_db_engine, migrate, ping
from storage.kafka import EmbeddedBroker, ensure_topics, kafka_ping
from storage.strays import StrayRepository
from storage.windows import WindowRepository

__all__ = [
    "ApiKeyRepository",
    "Cache",
    "EmbeddedBroker",
    "StrayRepository",
    "WindowRepository",
    "create_db_engine",
    "ensure_topics",
    "kafka_ping",
    "migrate",
    "open_cache",
    "ping",
]
