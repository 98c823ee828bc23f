"""``[collector]``: the OTLP collector: receivers, rate limits, backpressure, spill buffer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from core.settings.rules import Int, Num, Text
from core.settings.spec import setting

__all__ = ["CollectorSettings"]


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """The OTLP collector: receivers, rate limits, backpressure, circuit breaker, spill buffer."""

    enabled: bool = setting(True, "run the OTLP collector service")
    host: str = setting(
        "127.0.0.1", "listen address of both receivers", Text(min_len=1), restart=True
    )
    http_port: int = setting(
        4318,
        "OTLP/HTTP receiver (`POST /v1/traces`, also `/metrics` and `/health`; 0: a free port)",
        Int(0, 65535),
        restart=True,
    )
    grpc_port: int = setting(
        4317,
        "OTLP/gRPC receiver (`TraceService/Export`; 0: a free port)",
        Int(0, 65535),
        restart=True,
    )
    max_request_bytes: int = setting(
        16 * 1024 * 1024, "largest OTLP/HTTP body, before and after gzip (413 beyond)", Int(1024)
    )
    source_rate: float = setting(
        20_000.0, "events/s per source (API key or `service.name`); 0: off", Num(0)
    )
    source_burst: int = setting(40_000, "events a source may send at once", Int(1))
    global_rate: float = setting(100_000.0, "events/s over all sources; 0: off", Num(0))
    global_burst: int = setting(200_000, "burst over all sources", Int(1))
    queue_high_watermark: int = setting(
        50_000, "events waiting for Kafka from which exports are refused (429)", Int(1)
    )
    queue_low_watermark: int = setting(
        25_000, "... until the queue is back below this (below the high watermark)", Int(0)
    )
    breaker_failure_threshold: int = setting(
        3, "consecutive failed deliveries that open the Kafka breaker", Int(1)
    )
    breaker_reset_timeout: timedelta = setting(
        timedelta(seconds=5), "wait of an open breaker before a half-open probe"
    )
    delivery_timeout: timedelta = setting(
        timedelta(seconds=10),
        "how long a record may wait for Kafka's acknowledgement before it spills",
    )
    linger_ms: int = setting(5, "producer batching delay (ms)", Int(0))
    spill_dir: str = setting(
        "", "on-disk buffer while the broker is away", shown="`<data_dir>/collector-spill`"
    )
    spill_max_bytes: int = setting(
        1024 * 1024 * 1024, "bound of the spill buffer (beyond it: 429)", Int(1024)
    )
    spill_segment_bytes: int = setting(
        8 * 1024 * 1024, "size at which a spill segment file is sealed", Int(1024)
    )
    spill_adopt_interval: timedelta = setting(
        timedelta(seconds=30),
        "each process spills into its own locked folder under `spill_dir`; this often it adopts "
        "(replays) folders whose owner is gone",
    )

    def resolved_spill_dir(self, data_dir: str) -> Path:
        """The spill folder: ``spill_dir``, or ``collector-spill`` under ``data_dir``."""
        return Path(self.spill_dir) if self.spill_dir else Path(data_dir) / "collector-spill"
