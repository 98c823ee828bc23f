"""The collector service: OTLP/HTTP and OTLP/gRPC receivers and the ingest pipeline, in process."""

from __future__ import annotations

from collector.pipeline import TelemetryIngest
from collector.server import Collector
from core.settings import Settings
from orchestrator.service import HealthResult, HealthStatus, ServiceBase

__all__ = ["CollectorService"]


class CollectorService(ServiceBase):
    """Serves OTLP on ``collector.grpc_port``/``collector.http_port`` into Kafka.

    Healthy while the breaker is closed; degraded while it is open or half-open (events spill
    to disk and nothing is lost) or while backpressure refuses data; unhealthy when the
    receivers stopped. The health checks carry the breaker state, the spill buffer and the
    queue depth.
    """

    name = "collector"
    depends_on = ("storage",)
    required = False

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._collector: Collector | None = None

    async def start(self) -> None:
        """Start the pipeline and both receivers (replaying what an earlier run spilled)."""
        collector = Collector(self._settings)
        await collector.start()
        self._collector = collector

    @property
    def ingest(self) -> TelemetryIngest | None:
        """The running ingest pipeline, shared with the gRPC API; ``None`` while stopped."""
        return self._collector.ingest if self._collector is not None else None

    async def reload(self, settings: Settings) -> None:
        """Apply new rate limits at once (SIGHUP); ports and Kafka settings at the next start."""
        self._settings = settings
        if self._collector is not None:
            self._collector.ingest.reload(settings)

    async def stop(self) -> None:
        """Stop receiving; deliver or spill what was accepted."""
        collector, self._collector = self._collector, None
        if collector is not None:
            await collector.stop()

    async def health_check(self) -> HealthResult:
        """Breaker closed and queue below its high watermark: healthy; else degraded."""
        collector = self._collector
        if collector is None or not collector.running():
            return HealthResult(HealthStatus.UNHEALTHY, "receivers not running")
        checks = collector.ingest.health()
        checks["http_port"] = str(collector.http_port)
        checks["grpc_port"] = str(collector.grpc_port)
        if checks["breaker"] != "closed":
            return HealthResult(
                HealthStatus.DEGRADED,
                f"Kafka breaker {checks['breaker']}: spilling to disk",
                checks,
            )
        if checks["saturated"] == "true":
            return HealthResult(HealthStatus.DEGRADED, "backpressure: refusing data", checks)
        return HealthResult(HealthStatus.HEALTHY, "", checks)
