"""The record the collector sends to Kafka or keeps in its spill buffer."""

from __future__ import annotations

import msgspec

__all__ = ["OutRecord"]


class OutRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One Kafka record: topic, key, value and headers (``name → bytes`` pairs, in order)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = []
