"""Dead-letter records: the original bytes plus headers that say why and where they came from."""

from __future__ import annotations

from bytewax.connectors.kafka import KafkaSinkMessage

__all__ = ["REASON_HEADER", "dead_letter"]

REASON_HEADER = "reason"


def dead_letter(
    value: bytes | None, reason: str, topic: str, partition: int, offset: int
) -> KafkaSinkMessage[bytes | None, bytes | None]:
    """The DLQ record of a rejected record: the same bytes and a ``reason`` header."""
    headers = [
        (REASON_HEADER, reason.encode()),
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]
    return KafkaSinkMessage(key=None, value=value, headers=headers)
