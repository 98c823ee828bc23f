"""Dead-letter records: the original bytes plus headers that say why and where they came from."""

from __future__ import annotations

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage

__all__ = ["REASON_HEADER", "dead_letter"]

REASON_HEADER = "reason"


def dead_letter(
    msg: KafkaSourceMessage[bytes | None, bytes | None], reason: str
) -> KafkaSinkMessage[bytes | None, bytes | None]:
    """The DLQ record for ``msg``: same key and value, a ``reason`` header and the source offset."""
    headers = [(REASON_HEADER, reason.encode())]
    if msg.topic is not None:
        headers.append(("source.topic", msg.topic.encode()))
    if msg.partition is not None:
        headers.append(("source.partition", str(msg.partition).encode()))
    if msg.offset is not None:
        headers.append(("source.offset", str(msg.offset).encode()))
    return KafkaSinkMessage(key=msg.key, value=msg.value, headers=headers)
