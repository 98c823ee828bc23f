"""The one ingest pipeline of every telemetry path: OTLP/HTTP, OTLP/gRPC, REST and gRPC.

:class:`TelemetryIngest` rate-limits a batch (per source and globally), validates each event
with :func:`core.events.decode_event`, sends the valid ones to ``kafka.telemetry_topic``
(key = app, the original bytes) and the invalid ones to ``kafka.dlq_topic`` (the original
bytes, headers ``reason``, ``source.transport``, ``source.identity``, ``source.index``: the
processor's DLQ format with the collector's source), and returns once all of it is durable
(confirmed by Kafka or spilled to disk, see :mod:`collector.delivery`). Each batch runs in a
``collector.ingest`` span whose W3C ``traceparent`` every record carries as a Kafka header.

Use::

    ingest = TelemetryIngest(settings)          # settings.kafka.bootstrap_servers resolved
    await ingest.start()
    result = await ingest.submit([b'{"event_id": ...}', ...], Source("rest", "key:ab12"))
    result.accepted, result.rejected            # 2, [Rejection(index=1, reason="...")]
    await ingest.stop()

Records are bounded by Kafka's default message limit (1 MB): an event larger than
:data:`MAX_RECORD_BYTES` is rejected with a reason, and a DLQ record keeps at most the first
:data:`MAX_RECORD_BYTES` bytes of its payload (header ``payload.truncated`` = the original size),
so that no payload a client can send makes the producer fail.

Refusals raise :class:`core.errors.OverloadedError` (``retry_after`` seconds; HTTP 429,
gRPC ``RESOURCE_EXHAUSTED``); a batch larger than a rate-limit burst raises
:class:`core.errors.ValidationError` (HTTP 400, gRPC ``INVALID_ARGUMENT``). A refused batch was
not accepted at all: resend the whole of it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from collector.backpressure import Watermarks
from collector.breaker import CircuitBreaker
from collector.delivery import Delivery
from collector.kafka_sender import KafkaSender
from collector.metrics import CollectorMetrics
from collector.rate_limit import RateLimiter
from collector.records import OutRecord
from collector.shared_rate_limit import SharedRateLimiter
from collector.spill_owner import adopt_orphans, claim
from core.errors import OverloadedError, ValidationError
from core.events import Event, Feedback, LlmCall, Rejection, decode_event, encode_event
from core.record_check import apps_of_records
from core.settings import Settings
from core.tracing import kafka_trace_headers, span

__all__ = ["MAX_RECORD_BYTES", "IngestResult", "RejectedEvent", "Source", "TelemetryIngest"]

_JSON = msgspec.json.Encoder()
#: Largest record value sent to Kafka: below the default 1 MB ``message.max.bytes`` of the
#: producer and the broker, with room for the headers.
MAX_RECORD_BYTES = 900_000


@dataclass(frozen=True, slots=True)
class Source:
    """Who sent a batch.

    Attributes:
        transport: ``otlp_http``, ``otlp_grpc``, ``rest`` or ``grpc``.
        identity: The rate-limited source: ``key:<api key id>`` or ``service:<service.name>``.
    """

    transport: str
    identity: str


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """An event of the batch that failed validation (it went to the DLQ)."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What :meth:`TelemetryIngest.submit` did with a batch."""

    accepted: int
    rejected: list[RejectedEvent] = field(default_factory=list)


def _raw(event: bytes | Event | Mapping[str, Any]) -> bytes:
    if isinstance(event, bytes | bytearray | memoryview):
        return bytes(event)
    if isinstance(event, LlmCall | Feedback):
        return encode_event(event)
    return _JSON.encode(event)


def _encoded(event: bytes | Event | Mapping[str, Any]) -> tuple[bytes, Rejection | None]:
    """The record's bytes, and why it is rejected before it is parsed (None: parse it)."""
    try:
        raw = _raw(event)
    except (msgspec.EncodeError, OverflowError, TypeError, ValueError, RecursionError) as exc:
        return repr(event)[:MAX_RECORD_BYTES].encode(), Rejection(
            f"event cannot be encoded as JSON: {exc}"
        )
    if len(raw) > MAX_RECORD_BYTES:
        return raw, Rejection(
            f"event is {len(raw)} bytes, more than the {MAX_RECORD_BYTES}-byte record limit"
        )
    return raw, None


def _checked_batch(
    events: Sequence[bytes | Event | Mapping[str, Any]],
) -> tuple[list[bytes], list[str | Rejection]]:
    """Each event's bytes and its app, or why it is rejected (as ``decode_event`` says).

    Never raises: one bad record never fails its batch.
    """
    raws: list[bytes] = []
    results: list[str | Rejection] = []
    parse: list[int] = []
    for i, event in enumerate(events):
        raw, rejection = _encoded(event)
        raws.append(raw)
        results.append(rejection or "")
        if rejection is None:
            parse.append(i)
    if len(parse) == len(raws):
        return raws, _apps(raws)
    for i, app in zip(parse, _apps([raws[i] for i in parse]), strict=True):
        results[i] = app
    return raws, results


def _apps(raws: list[bytes]) -> list[str | Rejection]:
    try:
        return apps_of_records(raws)
    except Exception:  # never expected; one record at a time keeps the batch going
        return [_decoded_app(raw) for raw in raws]


def _decoded_app(raw: bytes) -> str | Rejection:
    try:
        decoded = decode_event(raw)
    except Exception as exc:
        return Rejection(f"event cannot be decoded: {type(exc).__name__}: {exc}")
    return decoded if isinstance(decoded, Rejection) else decoded.app


def dead_letter_record(
    topic: str,
    raw: bytes,
    reason: str,
    source: Source,
    index: int,
    trace_headers: Sequence[tuple[str, bytes]] = (),
) -> OutRecord:
    """The DLQ record of a rejected payload: the original bytes and why, where from.

    A payload beyond :data:`MAX_RECORD_BYTES` keeps its first :data:`MAX_RECORD_BYTES` bytes
    and says so in the header ``payload.truncated`` (the original size in bytes).
    """
    extra: list[tuple[str, bytes]] = []
    if len(raw) > MAX_RECORD_BYTES:
        extra.append(("payload.truncated", str(len(raw)).encode()))
        raw = raw[:MAX_RECORD_BYTES]
    headers = [
        ("reason", reason.encode()),
        ("source.transport", source.transport.encode()),
        ("source.identity", source.identity.encode()),
        ("source.index", str(index).encode()),
        *extra,
        *trace_headers,
    ]
    return OutRecord(topic, None, raw, headers)


class TelemetryIngest:
    """Rate limit → validate → Kafka (or the spill buffer) / DLQ. One per process.

    Args:
        settings: ``kafka.bootstrap_servers`` must name the broker (the embedded one resolved).
        metrics: Where to count; a fresh :class:`CollectorMetrics` by default.
        clock: Monotonic seconds of the rate limiter (tests freeze it).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: CollectorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        c = settings.collector
        self._telemetry_topic = settings.kafka.telemetry_topic
        self._dlq_topic = settings.kafka.dlq_topic
        self.metrics = metrics or CollectorMetrics()
        self._limiter = RateLimiter(
            c.source_rate, c.source_burst, c.global_rate, c.global_burst, clock=clock
        )
        self._shared = (
            SharedRateLimiter(
                settings.storage.redis_url,
                settings.api.rate_limit.prefix,
                c.source_rate,
                c.source_burst,
                c.global_rate,
                c.global_burst,
                fallback=self._limiter,
                on_fallback=self.metrics.rate_limit_fallbacks.inc,
            )
            if settings.storage.redis_url
            else None
        )
        breaker = CircuitBreaker(
            c.breaker_failure_threshold,
            c.breaker_reset_timeout.total_seconds(),
            on_change=lambda state: self.metrics.breaker_state.set(state.code),
        )
        # This process's own folder under the spill root (workers and replicas may share it).
        spill_root = c.resolved_spill_dir(settings.storage.data_dir)
        spill = claim(spill_root, c.spill_max_bytes, c.spill_segment_bytes)
        self._delivery = Delivery(
            KafkaSender(
                settings.kafka.bootstrap_servers,
                delivery_timeout=c.delivery_timeout.total_seconds(),
                linger_ms=c.linger_ms,
                on_brokers_down=lambda: self._delivery.on_brokers_down(),
                topics={
                    settings.kafka.telemetry_topic: settings.kafka.partitions,
                    settings.kafka.dlq_topic: settings.kafka.partitions,
                },
            ),
            spill,
            breaker,
            Watermarks(c.queue_high_watermark, c.queue_low_watermark),
            self.metrics,
            adopt=lambda: adopt_orphans(spill_root, spill),
            adopt_interval_s=c.spill_adopt_interval.total_seconds(),
        )

    async def start(self) -> None:
        """Start delivering (and replay what an earlier run left in the spill buffer)."""
        await self._delivery.start()

    async def stop(self) -> None:
        """Deliver or spill what was accepted, then stop."""
        await self._delivery.stop()
        if self._shared is not None:
            await self._shared.close()

    def reload(self, settings: Settings) -> None:
        """Apply reloaded rate limits (``collector.*_rate``/``*_burst``) without a restart."""
        c = settings.collector
        self._limiter.reconfigure(c.source_rate, c.source_burst, c.global_rate, c.global_burst)
        if self._shared is not None:
            self._shared.reconfigure(c.source_rate, c.source_burst, c.global_rate, c.global_burst)

    def health(self) -> dict[str, str]:
        """Breaker state, spill buffer and queue depth (for health details)."""
        return self._delivery.health()

    async def _admit(self, source: Source, n: int) -> None:
        if self._shared is not None:
            wait = await self._shared.acquire(source.identity, n)
        else:
            wait = self._limiter.acquire(source.identity, n)
        if wait == 0.0:
            return
        if math.isinf(wait):
            raise ValidationError(
                f"batch of {n} events exceeds the rate-limit burst ({min(self._limiter.bursts)}); "
                "send smaller batches"
            )
        self.metrics.requests_refused.labels("rate_limited").inc()
        raise OverloadedError(
            f"rate limit exceeded for {source.identity}", retry_after=wait, cause="rate_limited"
        )

    async def submit(
        self, events: Sequence[bytes | Event | Mapping[str, Any]], source: Source
    ) -> IngestResult:
        """Validate a batch and make it durable: valid events to Kafka, invalid ones to the DLQ.

        Args:
            events: Raw JSON records (sent unchanged when valid), decoded events, or dicts in
                the contract's shape.
            source: Transport and identity (the rate-limit key).

        Returns:
            How many events were accepted, and each rejected one's index and reason.

        Raises:
            OverloadedError: Rate limited, backpressure or full buffer; nothing was accepted.
            ValidationError: The batch is larger than a rate-limit burst.
        """
        if not events:
            return IngestResult(0)
        attributes: dict[str, str | int | float | bool] = {
            "llmopt.transport": source.transport,
            "llmopt.events": len(events),
        }
        with span("collector.ingest", attributes=attributes):
            return await self._submit(events, source)

    async def _submit(
        self, events: Sequence[bytes | Event | Mapping[str, Any]], source: Source
    ) -> IngestResult:
        await self._admit(source, len(events))
        trace_headers = kafka_trace_headers()
        records: list[OutRecord] = []
        rejected: list[RejectedEvent] = []
        keys: dict[str, bytes] = {}
        raws, apps = _checked_batch(events)
        for i, (raw, app) in enumerate(zip(raws, apps, strict=True)):
            if isinstance(app, Rejection):
                rejected.append(RejectedEvent(i, app.reason))
                records.append(
                    dead_letter_record(self._dlq_topic, raw, app.reason, source, i, trace_headers)
                )
            else:
                key = keys.get(app)
                if key is None:
                    key = keys[app] = app.encode()
                records.append(OutRecord(self._telemetry_topic, key, raw, list(trace_headers)))
        try:
            await self._delivery.submit(records)
        except OverloadedError as exc:
            self.metrics.requests_refused.labels(exc.cause).inc()
            raise
        accepted = len(events) - len(rejected)
        self.metrics.events_accepted.labels(source.transport).inc(accepted)
        self.metrics.events_rejected.labels(source.transport).inc(len(rejected))
        self.metrics.events_dlq.inc(len(rejected))
        return IngestResult(accepted, rejected)

    async def dead_letter(self, payload: bytes, reason: str, source: Source) -> None:
        """Send a payload that could not even be parsed (a malformed request) to the DLQ.

        Raises:
            OverloadedError: As :meth:`submit`.
        """
        await self._admit(source, 1)
        self.metrics.requests_refused.labels("invalid").inc()
        record = dead_letter_record(
            self._dlq_topic, payload, reason, source, 0, kafka_trace_headers()
        )
        await self._delivery.submit([record])
        self.metrics.events_dlq.inc()
