"""Telemetry events (CONTRACT.md §2) and the decoder that never raises on bad bytes.

An application sends one JSON object per LLM call (``kind="llm_call"``) or per piece of user
feedback (``kind="feedback"``). :func:`decode_event` turns raw bytes into an :class:`LlmCall`, a
:class:`Feedback` or a :class:`Rejection` carrying the reason; it never raises.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "Event",
    "Feedback",
    "LlmCall",
    "Rejection",
    "decode_event",
    "encode_event",
    "parse_timestamp",
]

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
# Epoch milliseconds between 1970 and 9999.
_MAX_EPOCH_MS = 253_402_300_799_999


class LlmCall(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One LLM call, validated; ``timestamp`` is an aware UTC datetime."""

    event_id: str
    timestamp: datetime
    app: str
    model: str
    latency_ms: float
    input_tokens: int
    output_tokens: int
    kind: Literal["llm_call"] = "llm_call"
    task: str = "default"
    operation: str = "chat"
    provider: str | None = None
    ttft_ms: float | None = None
    cache_read_tokens: int | None = None
    cost_usd: float | None = None
    status: Literal["ok", "error"] = "ok"
    error_type: str | None = None
    finish_reason: str | None = None
    quality: float | None = None
    prompt_hash: str | None = None
    prompt_tokens_fixed: int | None = None
    config_version: int | None = None
    variant: Literal["baseline", "canary"] = "baseline"
    request_id: str | None = None
    user_id: str | None = None
    attributes: dict[str, Any] | None = None


class Feedback(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A quality score for an earlier call, joined to it by ``request_id``."""

    event_id: str
    timestamp: datetime
    app: str
    request_id: str
    quality: float
    kind: Literal["feedback"] = "feedback"
    task: str | None = None


Event = LlmCall | Feedback


class Rejection(msgspec.Struct, frozen=True):
    """Why a record could not become an event (goes to the dead-letter topic)."""

    reason: str


class _Wire(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """The JSON as sent: every field the contract names, with its type and range."""

    kind: Literal["llm_call", "feedback"] = "llm_call"
    event_id: NonEmpty
    timestamp: str | int | float
    app: NonEmpty
    task: NonEmpty | None = None
    operation: NonEmpty = "chat"
    provider: str | None = None
    model: NonEmpty | None = None
    latency_ms: NonNegFloat | None = None
    ttft_ms: NonNegFloat | None = None
    input_tokens: NonNegInt | None = None
    output_tokens: NonNegInt | None = None
    cache_read_tokens: NonNegInt | None = None
    cost_usd: NonNegFloat | None = None
    status: Literal["ok", "error"] = "ok"
    error_type: str | None = None
    finish_reason: str | None = None
    quality: Unit | None = None
    prompt_hash: str | None = None
    prompt_tokens_fixed: NonNegInt | None = None
    config_version: NonNegInt | None = None
    variant: Literal["baseline", "canary"] = "baseline"
    request_id: str | None = None
    user_id: str | None = None
    attributes: dict[str, Any] | None = None


_DECODER = msgspec.json.Decoder(_Wire)
_ENCODER = msgspec.json.Encoder()
_CALL_REQUIRED = ("model", "latency_ms", "input_tokens", "output_tokens")


def parse_timestamp(value: str | int | float) -> datetime:
    """Parse an RFC 3339 string or epoch milliseconds into an aware UTC datetime.

    Raises:
        ValueError: When the value is neither, or an RFC 3339 string lacks its UTC offset.
    """
    if isinstance(value, str):
        try:
            parsed = msgspec.convert(value, datetime)
        except msgspec.ValidationError as exc:
            raise ValueError(f"timestamp {value!r} is not RFC 3339") from exc
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no UTC offset (RFC 3339 requires one)")
        return parsed.astimezone(UTC)
    if not 0 <= value <= _MAX_EPOCH_MS:
        raise ValueError(f"timestamp {value!r} is out of range for epoch milliseconds")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def decode_event(raw: bytes | None) -> Event | Rejection:
    """Decode one record into an event, or say why it cannot be one. Never raises."""
    if not raw:
        return Rejection("empty record")
    try:
        wire = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        return Rejection(f"invalid event: {exc}")
    except msgspec.DecodeError as exc:
        return Rejection(f"not JSON: {exc}")
    try:
        timestamp = parse_timestamp(wire.timestamp)
    except ValueError as exc:
        return Rejection(f"invalid event: {exc} - at `$.timestamp`")
    if wire.kind == "feedback":
        return _feedback(wire, timestamp)
    return _llm_call(wire, timestamp)


def _feedback(wire: _Wire, timestamp: datetime) -> Feedback | Rejection:
    if not wire.request_id:
        return Rejection("invalid event: feedback requires `$.request_id`")
    if wire.quality is None:
        return Rejection("invalid event: feedback requires `$.quality`")
    return Feedback(
        event_id=wire.event_id,
        timestamp=timestamp,
        app=wire.app,
        request_id=wire.request_id,
        quality=wire.quality,
        task=wire.task,
    )


def _llm_call(wire: _Wire, timestamp: datetime) -> LlmCall | Rejection:
    missing = [name for name in _CALL_REQUIRED if getattr(wire, name) is None]
    if missing:
        fields = ", ".join(f"`$.{name}`" for name in missing)
        return Rejection(f"invalid event: llm_call requires {fields}")
    values = msgspec.structs.asdict(wire)
    values["timestamp"] = timestamp
    values["task"] = wire.task or "default"
    return LlmCall(**values)


def encode_event(event: Event) -> bytes:
    """Encode an event as contract JSON (timestamps as RFC 3339 UTC strings)."""
    return _ENCODER.encode(event)
