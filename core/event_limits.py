"""The limits a telemetry record must stay within, and the checks msgspec cannot express.

Every limit keeps a value that the decoder accepts safe for everything downstream: numpy's
int64 columns and sums, PostgreSQL's BIGINT/INTEGER columns and its JSON (no NUL, no
NaN/Infinity), and the window arithmetic on datetimes. A record outside them is rejected with a
reason (docs/telemetry.md: the rejection reasons); nothing after the decoder has to check again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

__all__ = [
    "DLQ_HEADROOM_BYTES",
    "MAX_ATTRIBUTE_DEPTH",
    "MAX_CONFIG_VERSION",
    "MAX_COST_USD",
    "MAX_DURATION_MS",
    "MAX_MESSAGE_BYTES_LIMIT",
    "MAX_RECORD_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_TIME",
    "MAX_TOKENS",
    "MIN_TIME",
    "STORED_TEXT_FIELDS",
    "Cost",
    "DurationMs",
    "Text",
    "Tokens",
    "Version",
    "attributes_too_deep",
    "nul_field",
]

MAX_RECORD_BYTES = 1_048_576
"""Default largest record (``kafka.max_message_bytes``): larger ones are rejected unparsed."""

MAX_MESSAGE_BYTES_LIMIT = 268_435_456
"""The largest ``kafka.max_message_bytes`` accepted (librdkafka allows up to 1e9 bytes)."""

DLQ_HEADROOM_BYTES = 65_536
"""Room above ``kafka.max_message_bytes`` for the DLQ headers and Kafka's record framing."""

MAX_TOKENS = 1_000_000_000
"""Tokens of one call (each token field): sums over any window stay far inside int64/BIGINT."""

MAX_DURATION_MS = 604_800_000.0
"""``latency_ms`` and ``ttft_ms``: one week; larger would only overflow the statistics."""

MAX_COST_USD = 1_000_000.0
"""``cost_usd`` of one call."""

MAX_CONFIG_VERSION = 2_147_483_647
"""``config_version``: the optimizer's config versions are PostgreSQL INTEGERs."""

MAX_TEXT_CHARS = 512
"""Every string field the processor keeps (the width of the text columns)."""

MAX_ATTRIBUTE_DEPTH = 32
"""How deeply ``attributes`` may nest objects and arrays (``{}`` alone is depth 1)."""

MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
"""Earliest accepted event time (epoch milliseconds start here too)."""

MAX_TIME = datetime(9000, 1, 1, tzinfo=UTC)
"""Accepted event times are before this: window arithmetic keeps clear of year 9999."""

Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
DurationMs = Annotated[float, msgspec.Meta(ge=0, le=MAX_DURATION_MS)]
Cost = Annotated[float, msgspec.Meta(ge=0, le=MAX_COST_USD)]
Version = Annotated[int, msgspec.Meta(ge=0, le=MAX_CONFIG_VERSION)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]

STORED_TEXT_FIELDS = (
    "event_id",
    "app",
    "task",
    "operation",
    "provider",
    "model",
    "error_type",
    "finish_reason",
    "prompt_hash",
    "request_id",
    "user_id",
    "shadow_model",
)
"""String fields that reach storage, where PostgreSQL refuses the NUL character."""


def nul_field(record: Any) -> str | None:
    """The first stored string field of ``record`` that holds a NUL character, if any."""
    for name in STORED_TEXT_FIELDS:
        value = getattr(record, name, None)
        if isinstance(value, str) and "\x00" in value:
            return name
    return None


def attributes_too_deep(value: object, limit: int = MAX_ATTRIBUTE_DEPTH) -> bool:
    """True when ``value`` nests objects/arrays more than ``limit`` levels (iteratively)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        else:
            children = item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False
