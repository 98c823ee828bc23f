"""Telemetry events (CONTRACT.md §2) and the decoder that never raises on bad bytes.

An application sends one JSON object per LLM call (``kind="llm_call"``) or per piece of user
feedback (``kind="feedback"``). :func:`decode_event` turns raw bytes into an :class:`LlmCall`, a
:class:`Feedback` or a :class:`Rejection` carrying the reason; it never raises.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, cast

import msgspec
import numpy as np

from core.call_batch import I64, CallBatch
from core.event_limits import (
    MAX_ATTRIBUTE_DEPTH,
    MAX_RECORD_BYTES,
    MAX_TEXT_CHARS,
    MAX_TIME,
    MIN_TIME,
    Cost,
    DurationMs,
    Text,
    Tokens,
    Version,
    attributes_too_deep,
    nul_field,
)

__all__ = [
    "AppEvents",
    "DecodedRecords",
    "Event",
    "Feedback",
    "LlmCall",
    "Rejection",
    "decode_event",
    "decode_records",
    "encode_event",
    "parse_timestamp",
]

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT_CHARS)]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch milliseconds of the accepted range (core.event_limits: MIN_TIME <= t < MAX_TIME).
_MAX_EPOCH_MS = (MAX_TIME - _EPOCH) // timedelta(milliseconds=1) - 1


class LlmCall(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
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
    shadow_model: str | None = None
    """The model the app also ran on this request without serving it (with ``shadow_quality``)."""
    shadow_quality: float | None = None
    """That shadow model's score (0..1) on this request."""


class Feedback(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A quality score for an earlier call, joined to it by ``request_id``."""

    event_id: str
    timestamp: datetime
    app: str
    request_id: str
    quality: float
    kind: Literal["feedback"] = "feedback"
    task: str | None = None
    shadow_model: str | None = None
    """A delayed score for the call's shadow answer: the shadow model (with ``shadow_quality``)."""
    shadow_quality: float | None = None


Event = LlmCall | Feedback


class Rejection(msgspec.Struct, frozen=True):
    """Why a record could not become an event (goes to the dead-letter topic)."""

    reason: str


class _Wire(msgspec.Struct, kw_only=True, forbid_unknown_fields=False, gc=False):
    """The JSON as sent: every field the contract names, with its type and range.

    The ranges (:mod:`core.event_limits`) keep every accepted value safe downstream: int64
    columns and sums, PostgreSQL columns and JSON, datetime arithmetic.

    Events are never part of a reference cycle (decoded JSON cannot form one), so they opt out
    of garbage-collector tracking (``gc=False``), which decoding millions of them would slow.
    """

    kind: Literal["llm_call", "feedback"] = "llm_call"
    event_id: NonEmpty
    timestamp: str | int | float
    app: NonEmpty
    task: NonEmpty | None = None
    operation: NonEmpty = "chat"
    provider: Text | None = None
    model: NonEmpty | None = None
    latency_ms: DurationMs | None = None
    ttft_ms: DurationMs | None = None
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    cache_read_tokens: Tokens | None = None
    cost_usd: Cost | None = None
    status: Literal["ok", "error"] = "ok"
    error_type: Text | None = None
    finish_reason: Text | None = None
    quality: float | None = None
    prompt_hash: Text | None = None
    prompt_tokens_fixed: Tokens | None = None
    config_version: Version | None = None
    variant: Literal["baseline", "canary"] = "baseline"
    request_id: Text | None = None
    user_id: Text | None = None
    attributes: dict[str, Any] | None = None
    shadow_model: NonEmpty | None = None
    shadow_quality: float | None = None


_DECODER = msgspec.json.Decoder(_Wire)
_BATCH_DECODER = msgspec.json.Decoder(list[_Wire])
_SPLITTER = msgspec.json.Decoder(list[msgspec.Raw])
_ENCODER = msgspec.json.Encoder()
_CALL_REQUIRED = ("model", "latency_ms", "input_tokens", "output_tokens")


def parse_timestamp(value: str | int | float) -> datetime:
    """Parse an RFC 3339 string or epoch milliseconds into an aware UTC datetime.

    Accepted times lie in ``[MIN_TIME, MAX_TIME)`` (1970-01-01 to 9000-01-01, UTC).

    Raises:
        ValueError: When the value is neither, an RFC 3339 string lacks its UTC offset, or
            the time is outside the accepted range.
    """
    if isinstance(value, str):
        try:
            parsed = msgspec.convert(value, datetime)
        except msgspec.ValidationError as exc:
            raise ValueError(f"timestamp {_shown(value)} is not RFC 3339") from exc
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {_shown(value)} has no UTC offset (RFC 3339 requires one)")
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError as exc:  # year 0 or 10000 in UTC
            raise ValueError(f"timestamp {_shown(value)} is outside {_RANGE}") from exc
        if not MIN_TIME <= parsed < MAX_TIME:
            raise ValueError(f"timestamp {_shown(value)} is outside {_RANGE}")
        return parsed
    if isinstance(value, bool) or not 0 <= value <= _MAX_EPOCH_MS:
        raise ValueError(f"timestamp {_shown(value)} is out of range for epoch milliseconds")
    return _EPOCH + timedelta(milliseconds=value)  # exact, unlike fromtimestamp(value / 1000)


_RANGE = f"the accepted range {MIN_TIME:%Y-%m-%d} to {MAX_TIME:%Y-%m-%d} (UTC)"


def _shown(value: object) -> str:
    """``repr`` of a value for a reason, cut short: a reason must stay a header-sized text."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def decode_event(raw: bytes | None, max_bytes: int = MAX_RECORD_BYTES) -> Event | Rejection:
    """Decode one record into an event, or say why it cannot be one. Never raises.

    Args:
        raw: The record's bytes.
        max_bytes: Larger records are rejected without being parsed
            (``kafka.max_message_bytes``).
    """
    if not raw:
        return Rejection("empty record")
    if len(raw) > max_bytes:
        return Rejection(
            f"record too large: {len(raw)} bytes, the limit is {max_bytes} "
            "(kafka.max_message_bytes)"
        )
    try:
        wire = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        return Rejection(f"invalid event: {exc}")
    except msgspec.DecodeError as exc:
        return Rejection(f"not JSON: {exc}")
    except UnicodeDecodeError as exc:
        return Rejection(f"not JSON: a string is not valid UTF-8 ({exc.reason})")
    except RecursionError:
        return Rejection("not JSON: nested too deeply to decode")
    return _from_wire(wire)


@dataclass(frozen=True, slots=True)
class AppEvents:
    """One app's share of a batch of records: its calls as columns, its feedback as events."""

    calls: CallBatch
    feedback: list[Feedback]


@dataclass(frozen=True, slots=True)
class DecodedRecords:
    """A batch of records decoded by app, and the records that are not events, with reasons."""

    apps: dict[str, AppEvents]
    rejected: list[tuple[int, str]]  # (position in the batch, reason)


_MS = timedelta(milliseconds=1)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def decode_records(
    records: Sequence[bytes | None],
    latest_ms: int | None = None,
    max_bytes: int = MAX_RECORD_BYTES,
) -> DecodedRecords:
    """Decode a batch of records straight into per-app columns. Never raises.

    Same validation and reasons as :func:`decode_event`; the common all-valid batch is decoded
    in one call and never builds an event object per call.

    Args:
        records: Raw records.
        latest_ms: When given, events dated after this epoch-ms moment are rejected: one event
            from a broken clock far in the future would otherwise push its app's watermark
            ahead and make every later event late.
        max_bytes: Larger records are rejected without being parsed.
    """
    wires = _decode_wires(records, max_bytes)
    if wires is None:
        return _group_events([_not_after(decode_event(r, max_bytes), latest_ms) for r in records])
    rejected: list[tuple[int, str]] = []
    ts = _wire_times(wires, rejected)
    if latest_ms is not None:
        for i in np.flatnonzero(ts > latest_ms).tolist():
            rejected.append((i, _future_reason(int(ts[i]), latest_ms)))
            ts[i] = -1
    # Rows that are not plain valid calls are few: find them in one pass, then handle each.
    special = {i for i, _ in rejected}
    special.update(
        i
        for i, w in enumerate(wires)
        if w.kind != "llm_call"
        or w.model is None
        or w.latency_ms is None
        or w.input_tokens is None
        or w.output_tokens is None
        or (w.shadow_model is None) is not (w.shadow_quality is None)
    )
    feedback: dict[str, list[Feedback]] = {}
    bad_time = {i for i, _ in rejected}
    for i in sorted(special - bad_time):
        w = wires[i]
        if w.kind == "feedback":
            event = _feedback(w, _EPOCH + timedelta(milliseconds=int(ts[i])))
            if isinstance(event, Rejection):
                rejected.append((i, event.reason))
            else:
                feedback.setdefault(w.app, []).append(event)
        else:
            rejected.append((i, _missing_reason(w) or _shadow_reason(w)))
    calls: dict[str, list[int]] = defaultdict(list)
    for i, app in enumerate([w.app for w in wires]):
        calls[app].append(i)
    if special:
        calls = {app: [i for i in idx if i not in special] for app, idx in calls.items()}
        calls = {app: idx for app, idx in calls.items() if idx}
    apps = {
        app: AppEvents(
            CallBatch.build(app, [wires[i] for i in idx], ts[idx]), feedback.pop(app, [])
        )
        for app, idx in calls.items()
    }
    for app, fbs in feedback.items():
        apps[app] = AppEvents(CallBatch.build(app, [], []), fbs)
    rejected.sort()
    return DecodedRecords(apps, rejected)


def _future_reason(ts_ms: int, latest_ms: int) -> str:
    at = (_EPOCH + timedelta(milliseconds=ts_ms)).isoformat()
    return (
        f"invalid event: timestamp {at} is {(ts_ms - latest_ms) / 1000:.0f}s beyond the accepted "
        "clock skew (processor.max_clock_skew) - at `$.timestamp`"
    )


def _not_after(result: Event | Rejection, latest_ms: int | None) -> Event | Rejection:
    if latest_ms is None or isinstance(result, Rejection):
        return result
    ts = _ms(result.timestamp)
    return Rejection(_future_reason(ts, latest_ms)) if ts > latest_ms else result


def _decode_wires(records: Sequence[bytes | None], max_bytes: int) -> list[_Wire] | None:
    """All records decoded in one call, or None when any of them needs the per-record path."""
    if not records or not all(records):
        return None
    # The brackets go on the end records, not around the joined buffer: each concatenation of
    # a ~1 MB buffer copies it into freshly faulted pages (~100 ns per record).
    parts = cast(list[bytes], list(records))  # all(records): no None
    if max(map(len, parts)) > max_bytes:
        return None
    parts[0] = b"[" + parts[0]
    parts[-1] += b"]"
    joined = b",".join(parts)
    try:
        spans = _SPLITTER.decode(joined)
        wires = _BATCH_DECODER.decode(joined)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    # Each element must be exactly its record, or two broken records could join into events
    # (b'{"a": [{..}' + b'..]}'). The elements are in order and apart by at least the commas,
    # so equal lengths leave no room for anything else: element i is record i.
    if len(spans) != len(records) or any(map(_differ, spans, records)):
        return None
    # NUL only arrives escaped (raw control characters are not JSON); a backslash is rare and fast
    # to look for, so the exact check of the stored fields runs only when it can matter.
    if b"\\" in joined and b"\\u0000" in joined and any(map(nul_field, wires)):
        return None
    if any(w.attributes and attributes_too_deep(w.attributes) for w in wires):
        return None
    return wires


def _differ(span: msgspec.Raw, record: bytes | None) -> bool:
    return len(span) != len(record or b"")


def _wire_times(wires: list[_Wire], rejected: list[tuple[int, str]]) -> I64:
    """Event times in epoch ms; -1 where the timestamp is invalid (and a rejection is noted)."""
    raw = [w.timestamp for w in wires]
    if all(type(t) is int for t in raw):
        try:
            ts = np.array(raw, dtype=np.int64)
        except OverflowError:  # beyond 64 bits: each is checked (and rejected) below
            ts = np.empty(0, dtype=np.int64)
        if len(ts) == len(raw) and (len(ts) == 0 or (ts.min() >= 0 and ts.max() <= _MAX_EPOCH_MS)):
            return ts
    out = np.empty(len(raw), dtype=np.int64)
    for i, value in enumerate(raw):
        if type(value) is int and 0 <= value <= _MAX_EPOCH_MS:  # as parse_timestamp, exact
            out[i] = value
            continue
        try:
            out[i] = _ms(parse_timestamp(value))
        except ValueError as exc:
            out[i] = -1
            rejected.append((i, f"invalid event: {exc} - at `$.timestamp`"))
    return out


def _group_events(results: list[Event | Rejection]) -> DecodedRecords:
    rejected: list[tuple[int, str]] = []
    calls: dict[str, list[LlmCall]] = {}
    feedback: dict[str, list[Feedback]] = {}
    for i, result in enumerate(results):
        if isinstance(result, Rejection):
            rejected.append((i, result.reason))
        elif isinstance(result, Feedback):
            feedback.setdefault(result.app, []).append(result)
        else:
            calls.setdefault(result.app, []).append(result)
    apps = {
        app: AppEvents(
            CallBatch.from_events(app, group),
            feedback.pop(app, []),
        )
        for app, group in calls.items()
    }
    for app, fbs in feedback.items():
        apps[app] = AppEvents(CallBatch.build(app, [], []), fbs)
    return DecodedRecords(apps, rejected)


def _missing_reason(w: _Wire) -> str:
    """Why a call lacks required fields ("" when none is missing)."""
    missing = [name for name in _CALL_REQUIRED if getattr(w, name) is None]
    if not missing:
        return ""
    return "invalid event: llm_call requires " + ", ".join(f"`$.{name}`" for name in missing)


def _shadow_reason(w: _Wire) -> str:
    """Why the shadow fields are unusable: one without the other ("" when both or neither)."""
    if w.shadow_model is None and w.shadow_quality is not None:
        return "invalid event: `$.shadow_quality` requires `$.shadow_model`"
    if w.shadow_model is not None and w.shadow_quality is None:
        return "invalid event: `$.shadow_model` requires `$.shadow_quality`"
    return ""


def _from_wire(wire: _Wire) -> Event | Rejection:
    field = nul_field(wire)
    if field is not None:
        return Rejection(f"invalid event: NUL character in a string - at `$.{field}`")
    if wire.attributes and attributes_too_deep(wire.attributes):
        return Rejection(
            f"invalid event: nested deeper than {MAX_ATTRIBUTE_DEPTH} levels - at `$.attributes`"
        )
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
    quality = _clamp(wire.quality)
    if quality is None:
        return Rejection("invalid event: feedback requires `$.quality`")
    if shadow := _shadow_reason(wire):
        return Rejection(shadow)
    return Feedback(
        event_id=wire.event_id,
        timestamp=timestamp,
        app=wire.app,
        request_id=wire.request_id,
        quality=quality,
        task=wire.task,
        shadow_model=wire.shadow_model,
        shadow_quality=_clamp(wire.shadow_quality),
    )


def _llm_call(w: _Wire, timestamp: datetime) -> LlmCall | Rejection:
    model, latency, tokens_in, tokens_out = w.model, w.latency_ms, w.input_tokens, w.output_tokens
    if model is None or latency is None or tokens_in is None or tokens_out is None:
        return Rejection(_missing_reason(w))
    if shadow := _shadow_reason(w):
        return Rejection(shadow)
    return LlmCall(
        event_id=w.event_id,
        timestamp=timestamp,
        app=w.app,
        model=model,
        latency_ms=latency,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        task=w.task or "default",
        operation=w.operation,
        provider=w.provider,
        ttft_ms=w.ttft_ms,
        cache_read_tokens=w.cache_read_tokens,
        cost_usd=w.cost_usd,
        status=w.status,
        error_type=w.error_type,
        finish_reason=w.finish_reason,
        quality=_clamp(w.quality),
        prompt_hash=w.prompt_hash,
        prompt_tokens_fixed=w.prompt_tokens_fixed,
        config_version=w.config_version,
        variant=w.variant,
        request_id=w.request_id,
        user_id=w.user_id,
        attributes=w.attributes,
        shadow_model=w.shadow_model,
        shadow_quality=_clamp(w.shadow_quality),
    )


def _clamp(quality: float | None) -> float | None:
    """Normalise a quality score into [0, 1] (scores slightly outside are clamped, not lost)."""
    if quality is None:
        return None
    return 0.0 if quality < 0.0 else 1.0 if quality > 1.0 else quality


def encode_event(event: Event) -> bytes:
    """Encode an event as contract JSON (timestamps as RFC 3339 UTC strings)."""
    return _ENCODER.encode(event)
