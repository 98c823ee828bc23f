"""The OTLP/gRPC receiver: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

The service is registered with a raw-bytes handler so that a body that is not an
``ExportTraceServiceRequest`` is answered ``INVALID_ARGUMENT`` and lands in the DLQ (a typed
handler would fail inside gRPC before the collector sees it). Refusals end the call with
``RESOURCE_EXHAUSTED`` and a ``grpc-status-details-bin`` trailer
holding a ``google.rpc.Status`` with ``RetryInfo`` (what the OpenTelemetry exporters read);
a batch beyond a burst ends with ``INVALID_ARGUMENT``. Rejected spans are reported in
``partial_success``.

``MetricsService/Export`` and ``LogsService/Export`` are accepted and counted as on OTLP/HTTP
(:mod:`collector.otlp_signals`); nothing of them reaches Kafka.
"""

from __future__ import annotations

import contextlib
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.otlp_export import export_traces, source_of
from collector.pipeline import TelemetryIngest
from collector.rpc_status import status_bytes
from core.errors import OverloadedError, ValidationError

__all__ = ["SERVICE_NAME", "TraceServicer", "start_grpc_server"]

TRANSPORT = "otlp_grpc"
SERVICE_NAME = "opentelemetry.proto.collector.trace.v1.TraceService"
METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def _api_key(context: Any) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "x-api-key" and isinstance(value, str):
            return value
    return None


class TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    """Feeds every export into the ingest pipeline."""

    def __init__(self, ingest: TelemetryIngest) -> None:
        self._ingest = ingest

    async def Export(  # noqa: N802 - the generated name
        self,
        request: ExportTraceServiceRequest,
        context: Any,
    ) -> ExportTraceServiceResponse:
        """Ingest the GenAI spans of one export."""
        try:
            return await export_traces(self._ingest, request, TRANSPORT, _api_key(context))
        except OverloadedError as exc:
            details = status_bytes(
                grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], str(exc), exc.retry_after
            )
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                str(exc),
                trailing_metadata=(("grpc-status-details-bin", details),),
            )
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("unreachable")  # context.abort always raises

    async def export_raw(self, raw: bytes, context: Any) -> ExportTraceServiceResponse:
        """Parse the request bytes; a malformed request goes to the DLQ, INVALID_ARGUMENT."""
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(raw)
        except (DecodeError, RecursionError) as exc:
            reason = f"body is not an OTLP protobuf message: {str(exc)[:500]}"
            source = source_of(TRANSPORT, _api_key(context), [])
            with contextlib.suppress(OverloadedError, ValidationError):
                await self._ingest.dead_letter(raw, reason, source)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, reason)
        return await self.Export(request, context)


class SignalServicer:
    """``MetricsService/Export`` and ``LogsService/Export``: counted, GenAI aggregates kept."""

    def __init__(self, ingest: TelemetryIngest) -> None:
        self._signals = ingest.metrics.signals

    async def metrics(
        self, request: ExportMetricsServiceRequest, context: Any
    ) -> ExportMetricsServiceResponse:
        """Count the data points (see :meth:`collector.otlp_signals.SignalMetrics.metrics`)."""
        self._signals.metrics(request)
        return ExportMetricsServiceResponse()

    async def logs(
        self, request: ExportLogsServiceRequest, context: Any
    ) -> ExportLogsServiceResponse:
        """Count the log records (see :meth:`collector.otlp_signals.SignalMetrics.logs`)."""
        self._signals.logs(request)
        return ExportLogsServiceResponse()


async def start_grpc_server(ingest: TelemetryIngest, host: str, port: int) -> tuple[Any, int]:
    """Start a ``grpc.aio`` server with the trace service; returns it and its bound port."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    servicer = TraceServicer(ingest)
    handler = grpc.unary_unary_rpc_method_handler(
        servicer.export_raw,
        request_deserializer=None,
        response_serializer=ExportTraceServiceResponse.SerializeToString,
    )
    signals = SignalServicer(ingest)
    metrics = grpc.unary_unary_rpc_method_handler(
        signals.metrics,
        request_deserializer=ExportMetricsServiceRequest.FromString,
        response_serializer=ExportMetricsServiceResponse.SerializeToString,
    )
    logs = grpc.unary_unary_rpc_method_handler(
        signals.logs,
        request_deserializer=ExportLogsServiceRequest.FromString,
        response_serializer=ExportLogsServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(SERVICE_NAME, {"Export": handler}),
            grpc.method_handlers_generic_handler(METRICS_SERVICE, {"Export": metrics}),
            grpc.method_handlers_generic_handler(LOGS_SERVICE, {"Export": logs}),
        )
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the OTLP/gRPC receiver to {host}:{port}")
    await server.start()
    return server, bound
