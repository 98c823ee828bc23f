"""Dead-letter records: the original bytes plus headers that say why and where they came from."""

from __future__ import annotations

from bytewax.connectors.kafka import KafkaSinkMessage

from core.event_limits import DLQ_HEADROOM_BYTES, MAX_RECORD_BYTES

__all__ = [
    "DLQ_HEADROOM_BYTES",
    "MAX_REASON_CHARS",
    "REASON_HEADER",
    "TRUNCATED_HEADER",
    "dead_letter",
    "dlq_producer_config",
]

REASON_HEADER = "reason"
TRUNCATED_HEADER = "truncated"
MAX_REASON_CHARS = 1000


def dead_letter(
    value: bytes | None,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    max_bytes: int = MAX_RECORD_BYTES,
) -> KafkaSinkMessage[bytes | None, bytes | None]:
    """The DLQ record of a rejected record: the same bytes and a ``reason`` header.

    A record larger than ``max_bytes`` (``kafka.max_message_bytes``; a broker may accept more
    than the optimizer does) goes to the DLQ cut to its first ``max_bytes`` bytes, with a
    ``truncated`` header holding the original size, so it never exceeds what the DLQ producer
    may send. The reason is cut to :data:`MAX_REASON_CHARS` characters.
    """
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 3] + "..."
    headers = [
        (REASON_HEADER, reason.encode(errors="backslashreplace")),
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]
    if value is not None and len(value) > max_bytes:
        headers.append((TRUNCATED_HEADER, str(len(value)).encode()))
        value = value[:max_bytes]
    return KafkaSinkMessage(key=None, value=value, headers=headers)


def dlq_producer_config(max_message_bytes: int) -> dict[str, str]:
    """Producer settings of the DLQ sink: every record :func:`dead_letter` builds fits."""
    return {"message.max.bytes": str(max_message_bytes + DLQ_HEADROOM_BYTES)}
