"""Quarantine: items a processing step or a write refuses go to the DLQ topic with a reason.

A record that fails to decode is a dead letter of :mod:`sinks.dead_letters`. An item that makes
a *later* step raise (the window state, an analyzer, a strategy, the actuator, a database
write that refuses its data) is quarantined the same way: the item as JSON (the window, the
period, the actuator's work; for an app's share of a poll the offsets of its records) on the
DLQ topic, with the headers ``reason`` (the exception), ``stage`` (the step) and ``app``. The
stream goes on; ``llmopt_processor_quarantined_total{stage}`` counts them on the processor's
``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec
from bytewax.connectors.kafka import KafkaSinkMessage
from prometheus_client import Counter

from sinks.dead_letters import REASON_HEADER

__all__ = [
    "MAX_VALUE_BYTES",
    "QUARANTINED",
    "STAGE_HEADER",
    "DeadLetterWriter",
    "describe",
    "encode_item",
    "quarantined",
]

_log = logging.getLogger(__name__)

STAGE_HEADER = "stage"
#: Quarantined values are cut to this size (the DLQ topic keeps Kafka's 1 MB default limit).
MAX_VALUE_BYTES = 512 * 1024
_MAX_REASON = 2000

#: Items set aside per stage (the processor's own ``/metrics``, served by Bytewax).
QUARANTINED = Counter(
    "llmopt_processor_quarantined",
    "Items a processing step or a database write refused, sent to the DLQ topic",
    ["stage"],
)

DlqMsg = KafkaSinkMessage[bytes | None, bytes | None]


def describe(exc: BaseException) -> str:
    """The reason of a quarantine: the exception's type and message, on one bounded line."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:_MAX_REASON]


def encode_item(item: object) -> bytes:
    """JSON of ``item`` (msgspec structs, dataclasses, plain values); ``repr`` if not encodable."""
    try:
        return msgspec.json.encode(item)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return repr(item).encode("utf-8", "replace")


def quarantined(
    value: bytes,
    reason: str,
    stage: str,
    *,
    app: str = "",
    extra: Sequence[tuple[str, str]] = (),
) -> DlqMsg:
    """The DLQ record of a quarantined item (counted in :data:`QUARANTINED`).

    Args:
        value: The item, encoded (cut to :data:`MAX_VALUE_BYTES`, header ``truncated``).
        reason: Why (see :func:`describe`).
        stage: The step that refused it (``app_windows``, ``analyzer:cost``, ``actuator``...).
        app: The app the item belongs to, also the message key.
        extra: More headers (e.g. the source offsets).
    """
    QUARANTINED.labels(stage).inc()
    headers = [
        (REASON_HEADER, reason.encode("utf-8", "replace")),
        (STAGE_HEADER, stage.encode()),
        ("app", app.encode("utf-8", "replace")),
        *((k, v.encode("utf-8", "replace")) for k, v in extra),
    ]
    if len(value) > MAX_VALUE_BYTES:
        value = value[:MAX_VALUE_BYTES]
        headers.append(("truncated", b"true"))
    _log.error("quarantined an item of app %r at stage %s: %s", app, stage, reason)
    return KafkaSinkMessage(
        key=app.encode("utf-8", "replace") or None, value=value, headers=headers
    )


class DeadLetterWriter:
    """Sends quarantine records from inside a sink (a sink has no dataflow output to use).

    The producer is made on first use; every send is flushed, so nothing is left in memory when
    the sink returns. A send that cannot be delivered is logged with the whole record.
    """

    def __init__(self, brokers: Sequence[str], topic: str, timeout_s: float = 30.0) -> None:
        self._brokers = ",".join(brokers)
        self._topic = topic
        self._timeout_s = timeout_s
        self._producer: object | None = None

    def send(self, message: DlqMsg) -> None:
        """Produce ``message`` on the DLQ topic and wait for it."""
        from confluent_kafka import KafkaException, Producer

        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self._brokers})
        producer = self._producer
        assert isinstance(producer, Producer)
        headers: list[tuple[str, str | bytes | None]] = list(message.headers)
        try:
            producer.produce(self._topic, value=message.value, key=message.key, headers=headers)
            left = producer.flush(self._timeout_s)
        except (KafkaException, BufferError) as exc:
            left, reason = 1, describe(exc)
        else:
            reason = "not delivered within the timeout"
        if left:
            _log.error(
                "quarantine record not delivered to %s (%s): headers=%r value=%r",
                self._topic,
                reason,
                message.headers,
                message.value,
            )
