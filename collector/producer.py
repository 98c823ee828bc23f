"""The Kafka producer every ingest path uses: idempotent, ``acks=all``, compressed, key = app."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from confluent_kafka import KafkaError, Message, Producer

from core.errors import StorageUnavailableError

__all__ = ["ProduceReport", "TelemetryProducer", "app_key", "producer_config"]


class _AppOnly(msgspec.Struct):
    app: str


_APP = msgspec.json.Decoder(_AppOnly)


def app_key(raw: bytes) -> bytes | None:
    """The message key of a telemetry record: its ``app``, or ``None`` when it has none."""
    try:
        return _APP.decode(raw).app.encode()
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def producer_config(bootstrap: str, *, linger_ms: int = 5, **extra: Any) -> dict[str, Any]:
    """The librdkafka settings of every telemetry producer: idempotent, ``acks=all``, lz4.

    Args:
        bootstrap: ``host:port[,host:port]``.
        linger_ms: How long records wait to fill a batch.
        extra: More librdkafka settings (dots as in librdkafka, e.g. ``message.timeout.ms``).
    """
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": linger_ms,
        **extra,
    }


class ProduceReport(msgspec.Struct):
    """What a :meth:`TelemetryProducer.send_all` delivered."""

    delivered: int = 0
    failed: int = 0
    errors: list[str] = msgspec.field(default_factory=list)


class TelemetryProducer:
    """Sends raw telemetry records to the telemetry topic and confirms each delivery."""

    def __init__(self, bootstrap: str, topic: str, *, linger_ms: int = 5) -> None:
        self._topic = topic
        self._producer = Producer(producer_config(bootstrap, linger_ms=linger_ms))

    def send_all(self, records: Iterable[bytes], timeout: float = 30.0) -> ProduceReport:
        """Send every record (key = its app) and wait until all are confirmed or failed."""
        report = ProduceReport()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                report.delivered += 1
            else:
                report.failed += 1
                if len(report.errors) < 10:
                    report.errors.append(str(err))

        for raw in records:
            while True:
                try:
                    self._producer.produce(
                        self._topic, value=raw, key=app_key(raw), on_delivery=on_delivery
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
            self._producer.poll(0)
        remaining = self._producer.flush(timeout)
        if remaining:
            raise StorageUnavailableError(
                f"{remaining} record(s) not confirmed by Kafka within {timeout}s"
            )
        return report
