"""Batch telemetry ingest behind ``POST /api/v1/telemetry`` (and gRPC ingest).

A body is a JSON array of events or NDJSON (one event per line), at most ``api.max_batch_events``
events. Each event is validated on its own by :class:`collector.pipeline.TelemetryIngest`:
valid ones go to Kafka, invalid ones to the DLQ, and the answer lists each rejected event's
index and reason. Backpressure and rate limits raise :class:`core.errors.OverloadedError`.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from collector.pipeline import IngestResult, Source
from core.errors import StorageUnavailableError, ValidationError

__all__ = ["EventRejection", "IngestLike", "TelemetryAccepted", "TelemetryService", "split_batch"]

_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


class IngestLike(Protocol):
    """What this service needs of :class:`collector.pipeline.TelemetryIngest`."""

    async def submit(self, events: list[bytes], source: Source) -> IngestResult:
        """Validate and make a batch durable."""
        ...


class EventRejection(msgspec.Struct, frozen=True, kw_only=True):
    """An event of the batch that failed validation (sent to the DLQ)."""

    index: int
    reason: str


class TelemetryAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to a batch: accepted and rejected counts, and why each was rejected."""

    accepted: int
    rejected: int
    errors: list[EventRejection]


def split_batch(body: bytes, content_type: str, max_events: int) -> list[bytes]:
    """The raw events of a JSON-array or NDJSON body.

    Raises:
        ValidationError: Not a JSON array or NDJSON, empty, or more than ``max_events`` events.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    text = body.lstrip()
    if not text:
        raise ValidationError("empty batch: send a JSON array or NDJSON of events")
    if media in NDJSON_TYPES or (media != "application/json" and text[:1] != b"["):
        events = [line for line in body.splitlines() if line.strip()]
    else:
        try:
            events = [bytes(raw) for raw in _ARRAY.decode(body)]
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ValidationError(f"body must be a JSON array of events: {exc}") from exc
        except RecursionError as exc:
            raise ValidationError("body must be a JSON array of events: nested too deeply") from exc
    if not events:
        raise ValidationError("empty batch: send at least one event")
    if len(events) > max_events:
        raise ValidationError(f"batch of {len(events)} events exceeds the limit of {max_events}")
    return events


class TelemetryService:
    """Splits a body into events and hands them to the ingest pipeline."""

    def __init__(self, ingest: IngestLike | None, *, max_events: int) -> None:
        self._ingest = ingest
        self._max_events = max_events

    async def ingest(self, body: bytes, content_type: str, *, identity: str) -> TelemetryAccepted:
        """Validate and deliver a batch sent by ``identity`` (the caller's subject)."""
        if self._ingest is None:
            raise StorageUnavailableError("telemetry ingest is not available: no Kafka configured")
        events = split_batch(body, content_type, self._max_events)
        result = await self._ingest.submit(events, Source("rest", identity))
        return TelemetryAccepted(
            accepted=result.accepted,
            rejected=len(result.rejected),
            errors=[EventRejection(index=r.index, reason=r.reason) for r in result.rejected],
        )
