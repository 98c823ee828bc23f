"""The collector: OTLP receivers and the one ingest pipeline every telemetry path uses.

``TelemetryIngest`` validates batches, sends them to Kafka (idempotent producer behind a circuit
breaker, a bounded on-disk spill buffer while the broker is away), invalid ones to the DLQ;
``Collector`` serves OTLP/HTTP and OTLP/gRPC on top of it.
"""

from collector.breaker import BreakerState, CircuitBreaker
from collector.metrics import CollectorMetrics
from collector.otlp_mapping import map_request
from collector.pipeline import IngestResult, RejectedEvent, Source, TelemetryIngest
from collector.producer import ProduceReport, TelemetryProducer, app_key
from collector.rate_limit import RateLimiter
from collector.server import Collector

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "Collector",
    "CollectorMetrics",
    "IngestResult",
    "ProduceReport",
    "RateLimiter",
    "RejectedEvent",
    "Source",
    "TelemetryIngest",
    "TelemetryProducer",
    "app_key",
    "map_request",
]
