# ruff: noqa: N802 - gRPC method names are the proto's (PascalCase)
"""``llmopt.v1.MetricsService`` over :class:`api.service.MetricsQueries` and the ingest pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal, cast

from api.grpc.convert import event_json, optional, required, time_of, to_message
from api.grpc.errors import FieldError
from api.grpc.interceptors import principal_of
from api.grpc.live_layer import OnLiveLayer
from api.grpc.watch import follow_windows
from collector.pipeline import Source
from core.errors import OverloadedError, StorageUnavailableError
from proto.llmopt.v1 import common_pb2, metrics_pb2, metrics_pb2_grpc

__all__ = ["MetricsServicer"]

MAX_REPORTED_ERRORS = 1000
Kind = Literal["tumbling", "sliding"]


def _kind(request: Any) -> Kind:
    kind = optional(request, "kind", "tumbling")
    if kind not in ("tumbling", "sliding"):
        raise FieldError("kind", f"must be tumbling or sliding, not {kind!r}")
    return cast(Kind, kind)


class MetricsServicer(OnLiveLayer, metrics_pb2_grpc.MetricsServiceServicer):
    """Window stats, insights, a stream of closed windows, and telemetry ingest."""

    async def GetSummary(
        self, request: metrics_pb2.GetSummaryRequest, context: Any
    ) -> metrics_pb2.GetSummaryResponse:
        """Windows oldest first, with totals and stray counts."""
        summary = await asyncio.to_thread(
            self._r.metrics.summary,
            required(request.app, "app"),
            optional(request, "task"),
            kind=_kind(request),
            since=time_of(request, "since"),
            until=time_of(request, "until"),
            limit=optional(request, "limit", 1000),
        )
        return to_message(summary, metrics_pb2.GetSummaryResponse)

    async def QueryWindows(
        self, request: metrics_pb2.QueryWindowsRequest, context: Any
    ) -> metrics_pb2.QueryWindowsResponse:
        """Windows filtered by segment and range, oldest first."""
        summary = await asyncio.to_thread(
            self._r.metrics.summary,
            required(request.app, "app"),
            optional(request, "task"),
            kind=_kind(request),
            since=time_of(request, "since"),
            until=time_of(request, "until"),
            limit=optional(request, "limit", 1000),
        )
        model, variant = optional(request, "model"), optional(request, "variant")
        windows = [
            w
            for w in summary.windows
            if (model is None or w.model == model) and (variant is None or w.variant == variant)
        ]
        return to_message({"windows": windows}, metrics_pb2.QueryWindowsResponse)

    async def ListInsights(
        self, request: metrics_pb2.ListInsightsRequest, context: Any
    ) -> metrics_pb2.ListInsightsResponse:
        """Insights newest window first."""
        found = await asyncio.to_thread(
            self._r.metrics.insights,
            required(request.app, "app"),
            optional(request, "task"),
            analyzer=optional(request, "analyzer"),
            severity=optional(request, "severity"),
            since=time_of(request, "since"),
            until=time_of(request, "until"),
            limit=optional(request, "limit", 100),
        )
        return to_message({"insights": found}, metrics_pb2.ListInsightsResponse)

    async def StreamMetrics(
        self, request: metrics_pb2.StreamMetricsRequest, context: Any
    ) -> AsyncIterator[common_pb2.WindowStats]:
        """Windows as they are stored."""
        grpc_settings = self._r.settings.grpc
        async for window in follow_windows(
            self._r.metrics,
            required(request.app, "app"),
            task=optional(request, "task"),
            kind=_kind(request),
            since=time_of(request, "since"),
            poll_s=grpc_settings.watch_poll_interval.total_seconds(),
            lookback=grpc_settings.stream_lookback,
        ):
            yield to_message(window, common_pb2.WindowStats)

    async def RecordTelemetry(
        self, request_iterator: AsyncIterator[metrics_pb2.RecordTelemetryRequest], context: Any
    ) -> metrics_pb2.RecordTelemetryResponse:
        """Each message's events through the ingest pipeline (Kafka, or the DLQ with a reason)."""
        ingest = self._r.ingest
        if ingest is None:
            raise StorageUnavailableError("telemetry ingest is not available: no Kafka configured")
        source = Source("grpc", principal_of().subject)
        limit = self._r.settings.api.max_batch_events
        out = metrics_pb2.RecordTelemetryResponse()
        offset = 0
        async for request in request_iterator:
            out.messages += 1
            batch = [event_json(e) for e in request.events]
            batch += [bytes(raw) for raw in request.json_events]
            if not batch:
                continue
            if len(batch) > limit:
                raise FieldError(
                    "events", f"a message of {len(batch)} events exceeds the limit of {limit}"
                )
            try:
                result = await ingest.submit(batch, source)
            except OverloadedError as exc:
                raise OverloadedError(
                    f"{exc}; {out.accepted} events of earlier messages were accepted, "
                    f"resend from event {offset}",
                    retry_after=exc.retry_after,
                    cause=exc.cause,
                ) from exc
            out.accepted += result.accepted
            out.rejected += len(result.rejected)
            for rejection in result.rejected:
                if len(out.errors) < MAX_REPORTED_ERRORS:
                    out.errors.add(index=offset + rejection.index, reason=rejection.reason)
            offset += len(batch)
        return out
