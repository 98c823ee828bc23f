"""Traces across services: REST → storage spans, ingest → Kafka ``traceparent``, OTLP export.

A recording tracer provider with an in-memory exporter stands in for the one the orchestrator
installs; the OTLP exporter is checked against a local HTTP receiver that records what it gets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from api.rest.context import RequestContextMiddleware, before_send
from collector.pipeline import Source, TelemetryIngest
from collector.records import OutRecord
from core.settings import Settings
from core.tracing import kafka_trace_headers, server_span, span, traced
from orchestrator import observability
from orchestrator.observability import configure_tracing, instrument_sql
from tests.recorded_spans import recorded_spans

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Record every span of the process's tracer provider (installed once when missing)."""
    with recorded_spans() as exporter:
        instrument_sql()
        yield exporter


def _trace_id(s: ReadableSpan) -> str:
    assert s.context is not None
    return format(s.context.trace_id, "032x")


def test_a_rest_request_continues_the_callers_trace_down_to_each_sql_statement(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'configs.db'}")

    @traced("configs.read")
    def read() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT 41 + 1")).scalar_one())

    @get("/answer", sync_to_thread=False)
    def answer() -> dict[str, int]:
        return {"answer": read()}

    app = Litestar([answer], middleware=[RequestContextMiddleware(5.0)], before_send=[before_send])
    with TestClient(app) as client:
        assert client.get("/answer", headers={"traceparent": CALLER}).json() == {"answer": 42}
    engine.dispose()
    by_name = {s.name: s for s in spans.get_finished_spans()}
    server, service, sql = (
        by_name["GET /answer"],
        by_name["configs.read"],
        by_name["SELECT configs.db"],
    )
    assert {_trace_id(s) for s in (server, service, sql)} == {CALLER_TRACE}
    assert server.kind is SpanKind.SERVER
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert service.parent is not None
    assert server.context is not None
    assert service.parent.span_id == server.context.span_id
    assert sql.parent is not None
    assert service.context is not None
    assert sql.parent.span_id == service.context.span_id
    assert sql.kind is SpanKind.CLIENT
    assert sql.attributes is not None
    assert dict(sql.attributes) == {
        "db.system": "sqlite",
        "db.name": str(tmp_path / "configs.db"),
        "db.statement": "SELECT 41 + 1",
    }


def test_a_failing_statement_ends_its_span_as_an_error(spans: InMemorySpanExporter) -> None:
    engine = create_engine("sqlite://")
    with span("outer"), engine.connect() as conn, pytest.raises(OperationalError):
        conn.execute(text("SELECT * FROM missing_table"))
    engine.dispose()
    [sql] = [s for s in spans.get_finished_spans() if s.name.startswith("SELECT")]
    assert sql.status.status_code is StatusCode.ERROR
    assert sql.status.description == "OperationalError"
    assert [e.name for e in sql.events] == ["exception"]


class RecordingDelivery:
    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    async def submit(self, records: list[OutRecord]) -> None:
        self.records.extend(records)


def test_ingested_records_carry_the_requests_traceparent(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    settings = Settings()
    data = dataclasses.replace(Settings().storage, data_dir=str(tmp_path))
    settings = settings.with_overrides(
        storage=data, kafka=dataclasses.replace(settings.kafka, bootstrap_servers="127.0.0.1:9")
    )
    ingest = TelemetryIngest(settings)
    delivery = RecordingDelivery()
    ingest._delivery = delivery  # type: ignore[assignment]
    good = (
        b'{"event_id": "e1", "timestamp": 0, "app": "a", "model": "m", "latency_ms": 1,'
        b' "input_tokens": 1, "output_tokens": 1}'
    )

    async def post() -> None:
        with server_span("POST /api/v1/telemetry", {"traceparent": CALLER}):
            result = await ingest.submit([good, b"not json"], Source("rest", "key:k"))
        assert result.accepted == 1

    asyncio.run(post())
    [ingest_span] = [s for s in spans.get_finished_spans() if s.name == "collector.ingest"]
    assert _trace_id(ingest_span) == CALLER_TRACE
    assert ingest_span.context is not None
    expected = f"00-{CALLER_TRACE}-{ingest_span.context.span_id:016x}-01".encode()
    telemetry, dead = delivery.records
    assert telemetry.headers == [("traceparent", expected)]
    assert dead.headers[-1] == ("traceparent", expected)
    assert [name for name, _ in dead.headers[:4]] == [
        "reason",
        "source.transport",
        "source.identity",
        "source.index",
    ]


def test_no_trace_headers_outside_a_span() -> None:
    assert kafka_trace_headers() == []


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.got.append((self.path, self.headers["content-type"], body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_configure_tracing_exports_spans_over_otlp_http(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keep the process's global provider as it is; the returned provider is used directly.
    monkeypatch.setattr(observability.trace, "set_tracer_provider", lambda _p: None)
    _Receiver.got = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/"
        provider = configure_tracing(endpoint, service_name="optimizer-under-test")
        with provider.get_tracer("t").start_as_current_span("exported-span"):
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    [(path, content_type, body)] = _Receiver.got
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == "optimizer-under-test"
    names = [s.name for scope in resource_spans.scope_spans for s in scope.spans]
    assert names == ["exported-span"]
