"""The storage service: database schema, Kafka topics, cache; the embedded broker when asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.errors import StorageUnavailableError
from core.settings import Settings
from orchestrator.service import HealthResult, HealthStatus, ServiceBase
from storage.cache import open_cache
from storage.database import create_db_engine, migrate, ping
from storage.kafka import EmbeddedBroker, ensure_topics, kafka_ping, topic_configs

__all__ = ["StorageService"]


class StorageService(ServiceBase):
    """Brings the data layer up before anything uses it, and watches it.

    Args:
        settings: The resolved settings (``kafka.bootstrap_servers`` already names the
            embedded broker when ``embedded_broker`` is set).
        embedded_broker: Start the in-memory tansu broker on ``kafka.embedded_port``.
    """

    name = "storage"
    # Its dependents degrade instead of stopping when it fails for good: REST answers /health
    # (503) and cached config, the collector keeps feeding Kafka, the processor restarts itself.
    required = False

    def __init__(self, settings: Settings, *, embedded_broker: bool) -> None:
        self._settings = settings
        self._broker = (
            EmbeddedBroker(
                settings.kafka.embedded_port,
                log_path=Path(settings.storage.data_dir) / "embedded-broker.log",
            )
            if embedded_broker
            else None
        )
        self._engine = create_db_engine(settings.storage.resolved_database_url)
        self._cache = open_cache(settings.storage.redis_url)

    async def start(self) -> None:
        """Start the embedded broker, create topics, migrate the schema, reach the cache."""
        kafka = self._settings.kafka
        if self._broker is not None:
            await asyncio.to_thread(
                Path(self._settings.storage.data_dir).mkdir, parents=True, exist_ok=True
            )
            await asyncio.to_thread(self._broker.start)
        await asyncio.to_thread(
            ensure_topics,
            kafka.bootstrap_servers,
            {kafka.telemetry_topic: kafka.partitions, kafka.dlq_topic: kafka.partitions},
            configs=topic_configs(kafka),
        )
        await asyncio.to_thread(migrate, self._engine)
        await self._cache.ping()

    async def stop(self) -> None:
        """Release connections and stop the embedded broker."""
        await self._cache.close()
        self._engine.dispose()
        if self._broker is not None:
            await asyncio.to_thread(self._broker.stop)

    async def health_check(self) -> HealthResult:
        """Database, Kafka and cache each answer; the message names the one that does not."""
        checks: dict[str, str] = {}
        probes = {
            "database": lambda: asyncio.to_thread(ping, self._engine),
            "kafka": lambda: asyncio.to_thread(
                kafka_ping, self._settings.kafka.bootstrap_servers, 3.0
            ),
            "cache": self._cache.ping,
        }
        for name, probe in probes.items():
            try:
                await probe()
                checks[name] = "ok"
            except StorageUnavailableError as exc:
                checks[name] = str(exc)
        down = sorted(k for k, v in checks.items() if v != "ok")
        if down:
            return HealthResult(HealthStatus.UNHEALTHY, "down: " + ", ".join(down), checks)
        return HealthResult(HealthStatus.HEALTHY, "", checks)
