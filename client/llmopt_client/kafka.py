"""Telemetry straight to Kafka (``pip install llmopt-client[kafka]``).

:class:`KafkaReporter` produces each event to the telemetry topic (CONTRACT.md §2: topic
``llm.telemetry``, key ``app``, JSON value) with ``confluent-kafka``'s asynchronous producer:
``emit`` only queues (librdkafka batches and retries on its own threads); a full local queue
drops the event and counts it rather than block the call.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from confluent_kafka import KafkaException, Producer

__all__ = ["KafkaReporter"]

_log = logging.getLogger("llmopt_client")


class KafkaReporter:
    """Produces events to ``topic``; see the module docstring.

    Args:
        bootstrap_servers: The Kafka cluster (``host:9092,...``).
        topic: The telemetry topic.
        config: More librdkafka settings (``security.protocol``, ``sasl.*``...).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "llm.telemetry",
        config: dict[str, Any] | None = None,
    ) -> None:
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "linger.ms": 50,
            "enable.idempotence": True,
            "queue.buffering.max.messages": 100_000,
        }
        settings.update(config or {})
        self._producer = Producer(settings)
        self._topic = topic
        self.dropped = 0  # events refused by a full local queue
        self.failed = 0  # events the broker never confirmed

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failed += 1
            if self.failed == 1 or self.failed % 100 == 0:
                _log.warning("llmopt telemetry not delivered to Kafka (%d): %s", self.failed, err)

    def emit(self, event: dict[str, Any]) -> None:
        """Queue ``event`` (key: its ``app``); never blocks."""
        try:
            self._producer.produce(
                self._topic,
                value=msgspec.json.encode(event),
                key=str(event.get("app", "")).encode(),
                on_delivery=self._delivered,
            )
        except (BufferError, KafkaException):
            self.dropped += 1
        self._producer.poll(0)

    def flush(self, timeout: float) -> bool:
        """Wait for the broker to confirm what is queued; False when some is left."""
        return self._producer.flush(timeout) == 0

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout`` s)."""
        self.flush(timeout)
