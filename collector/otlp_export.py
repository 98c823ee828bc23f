"""One OTLP trace export, whatever the transport: map spans, ingest, answer the OTLP way."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.otlp_mapping import map_request
from collector.pipeline import Source, TelemetryIngest

__all__ = ["export_traces", "source_of"]


def source_of(transport: str, api_key: str | None, services: list[str]) -> Source:
    """The rate-limited source: the API key (hashed) when sent, else the first service.name."""
    if api_key:
        return Source(transport, "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:16])
    return Source(transport, "service:" + (services[0] if services else "unknown_service"))


async def export_traces(
    ingest: TelemetryIngest,
    request: ExportTraceServiceRequest,
    transport: str,
    api_key: str | None = None,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ExportTraceServiceResponse:
    """Ingest the GenAI spans of ``request``; spans whose events were invalid are rejected.

    Raises:
        OverloadedError: As :meth:`TelemetryIngest.submit` (nothing was accepted).
        ValidationError: As :meth:`TelemetryIngest.submit`.
    """
    mapped = map_request(request, clock())
    ingest.metrics.spans_received.labels(transport).inc(mapped.spans)
    ingest.metrics.spans_ignored.labels(transport).inc(mapped.ignored)
    response = ExportTraceServiceResponse()
    if not mapped.events:
        return response
    result = await ingest.submit(mapped.events, source_of(transport, api_key, mapped.services))
    if result.rejected:
        spans = {mapped.event_spans[r.index] for r in result.rejected}
        reasons = "; ".join(r.reason for r in result.rejected[:3])
        more = len(result.rejected) - 3
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(
                rejected_spans=len(spans),
                error_message=f"{len(result.rejected)} event(s) invalid: {reasons}"
                + (f" (and {more} more)" if more > 0 else ""),
            )
        )
    return response
