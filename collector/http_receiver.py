"""The OTLP/HTTP receiver: a small ASGI app served by Hypercorn.

Routes: ``POST /v1/traces`` (protobuf or JSON, optionally gzip), ``POST /v1/metrics`` and
``POST /v1/logs`` (accepted, counted, GenAI metric aggregates kept, nothing sent to Kafka:
:mod:`collector.otlp_signals`), ``GET /metrics`` (the
collector's Prometheus metrics), ``GET /health`` (breaker, spill buffer, queue as JSON).
Answers as OTLP/HTTP says: 200 with an ``ExportTraceServiceResponse`` (``partial_success`` for
rejected spans); 400 with a ``google.rpc.Status`` for a malformed body (which also goes to the
DLQ); 413 for a body beyond ``collector.max_request_bytes`` before or after gzip
decompression (not kept: the client should split it); 429 with ``Retry-After`` and a
``Status`` carrying ``RetryInfo`` when refused. Bodies use the request's media type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import structlog
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from collector.otlp_decode import (
    JSON,
    BodyTooLargeError,
    decode_body,
    decode_message,
    decompress,
    encode_response,
    media_type,
)
from collector.otlp_export import export_traces, source_of
from collector.otlp_signals import SignalCounts
from collector.pipeline import TelemetryIngest
from collector.rpc_status import status_bytes, status_json
from core.errors import OverloadedError, ValidationError

__all__ = ["OtlpHttpApp"]

_log = structlog.get_logger(__name__)
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED = 3, 8
TRANSPORT = "otlp_http"


class _TooLargeError(Exception):
    pass


class OtlpHttpApp:
    """ASGI application of the OTLP/HTTP receiver.

    Args:
        ingest: The pipeline every export goes through.
        max_request_bytes: Largest body, before and after decompression.
    """

    def __init__(self, ingest: TelemetryIngest, max_request_bytes: int) -> None:
        self._ingest = ingest
        self._limit = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope (``lifespan`` is acknowledged, nothing else)."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/v1/traces" and method == "POST":
            await self._traces(scope, receive, send)
        elif path in ("/v1/metrics", "/v1/logs") and method == "POST":
            await self._signal(scope, receive, send, path == "/v1/metrics")
        elif path == "/metrics" and method == "GET":
            body = self._ingest.metrics.exposition()
            await _respond(send, 200, body, "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/health" and method == "GET":
            body = json.dumps({"status": "ok", **self._ingest.health()}).encode()
            await _respond(send, 200, body, JSON)
        elif path in ("/v1/traces", "/v1/metrics", "/v1/logs", "/metrics", "/health"):
            await _respond(send, 405, b"method not allowed", "text/plain")
        else:
            await _respond(send, 404, b"not found", "text/plain")

    async def _read(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise _TooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _traces(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        kind = media_type(headers.get("content-type"))
        try:
            body = await self._read(receive)
        except _TooLargeError:
            await _status(
                send, kind, 413, _INVALID_ARGUMENT, "body beyond collector.max_request_bytes"
            )
            return
        api_key = headers.get("x-api-key")
        payload = body
        try:
            payload = decompress(body, headers.get("content-encoding"), self._limit)
            request = decode_body(payload, kind)
            response = await export_traces(self._ingest, request, TRANSPORT, api_key)
        except BodyTooLargeError as exc:
            await _status(send, kind, 413, _INVALID_ARGUMENT, str(exc))
        except ValidationError as exc:
            await self._malformed(send, kind, payload, str(exc), api_key)
        except OverloadedError as exc:
            await _refused(send, kind, exc)
        else:
            await _respond(send, 200, encode_response(response, kind), kind)

    async def _signal(self, scope: Scope, receive: Receive, send: Send, metrics: bool) -> None:
        """``/v1/metrics`` or ``/v1/logs``: decoded, counted, answered with an empty success."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        kind = media_type(headers.get("content-type"))
        try:
            body = await self._read(receive)
        except _TooLargeError:
            await _status(
                send, kind, 413, _INVALID_ARGUMENT, "body beyond collector.max_request_bytes"
            )
            return
        signals = self._ingest.metrics.signals
        try:
            payload = decompress(body, headers.get("content-encoding"), self._limit)
            if metrics:
                counts: SignalCounts = signals.metrics(
                    decode_message(payload, kind, ExportMetricsServiceRequest)
                )
                response: Any = ExportMetricsServiceResponse()
            else:
                counts = signals.logs(decode_message(payload, kind, ExportLogsServiceRequest))
                response = ExportLogsServiceResponse()
        except BodyTooLargeError as exc:
            await _status(send, kind, 413, _INVALID_ARGUMENT, str(exc))
        except ValidationError as exc:  # not telemetry events: nothing for the DLQ
            await _status(send, kind, 400, _INVALID_ARGUMENT, str(exc))
        else:
            _log.debug("otlp signal", metrics=metrics, genai=counts.genai, other=counts.other)
            await _respond(send, 200, encode_response(response, kind), kind)

    async def _malformed(
        self, send: Send, kind: str, payload: bytes, reason: str, api_key: str | None
    ) -> None:
        try:
            await self._ingest.dead_letter(payload, reason, source_of(TRANSPORT, api_key, []))
        except OverloadedError as exc:
            await _refused(send, kind, exc)
            return
        except ValidationError:
            pass
        await _status(send, kind, 400, _INVALID_ARGUMENT, reason)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _status(
    send: Send,
    kind: str,
    http_status: int,
    code: int,
    message: str,
    retry_after: float | None = None,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    encode = status_json if kind == JSON else status_bytes
    await _respond(send, http_status, encode(code, message, retry_after), kind, extra)


async def _refused(send: Send, kind: str, exc: OverloadedError) -> None:
    seconds = math.ceil(exc.retry_after)
    header = [(b"retry-after", str(seconds).encode())]
    await _status(send, kind, 429, _RESOURCE_EXHAUSTED, str(exc), exc.retry_after, header)
