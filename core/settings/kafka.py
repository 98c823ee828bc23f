"""``[kafka]``: where telemetry comes from and where bad records go."""

from __future__ import annotations

from dataclasses import dataclass

from core.event_limits import MAX_MESSAGE_BYTES_LIMIT, MAX_RECORD_BYTES
from core.settings.rules import BrokerList, Int, Text
from core.settings.spec import setting

__all__ = ["KafkaSettings"]


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where telemetry comes from and where bad records go.

    ``max_message_bytes`` is the one size limit of a record: larger records are rejected by
    the decoder, the topics the optimizer creates get it as ``max.message.bytes``, and the DLQ
    producer's ``message.max.bytes`` leaves room above it for the DLQ headers.
    """

    bootstrap_servers: str = setting(
        "",
        "Kafka cluster, e.g. `kafka1:9092,kafka2:9092`",
        BrokerList(),
        shown="empty: start the embedded broker",
        restart=True,
    )
    telemetry_topic: str = setting(
        "llm.telemetry", "topic of telemetry events", Text(min_len=1), restart=True
    )
    dlq_topic: str = setting(
        "llm.telemetry.dlq",
        "dead-letter topic of records that fail decoding (must differ from the telemetry topic)",
        Text(min_len=1),
        restart=True,
    )
    tail: bool = setting(
        True, "`false`: the dataflow stops at the end of the topic (backfills, benchmarks)"
    )
    partitions: int = setting(
        3, "partitions of topics the optimizer creates", Int(1, 1024), restart=True
    )
    embedded_port: int = setting(9092, "port of the embedded broker", Int(0, 65535))
    max_message_bytes: int = setting(
        MAX_RECORD_BYTES,
        "largest record accepted as an event; the DLQ producer's `message.max.bytes` is this "
        "plus 64 KiB (DLQ headers). Topics the optimizer creates accept 1 MiB + 64 KiB; with a "
        "larger value, raise the topics' `max.message.bytes` to match "
        "(`storage.kafka.topic_configs` computes them)",
        Int(1024, MAX_MESSAGE_BYTES_LIMIT),
    )

    @property
    def embedded(self) -> bool:
        """True when no cluster is configured and the embedded broker must be started."""
        return not self.bootstrap_servers

    @property
    def brokers(self) -> list[str]:
        """The bootstrap servers as a list of ``host:port``."""
        return [b.strip() for b in self.bootstrap_servers.split(",") if b.strip()]
