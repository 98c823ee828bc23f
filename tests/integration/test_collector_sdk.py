"""Stock OpenTelemetry SDK exporters (OTLP/HTTP and OTLP/gRPC) against the collector."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode

from collector import Collector
from tests.integration.test_collector import read_topic, run, settings_for

pytestmark = pytest.mark.integration

GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.output_tokens": 30,
    "gen_ai.response.finish_reasons": ("stop",),
    "llmopt.task": "classify",
}


def _emit(exporter: SpanExporter, service: str) -> None:
    """What an instrumented application does: two GenAI spans (one failing), one HTTP span."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes=GENAI):
        pass
    with tracer.start_as_current_span(
        "chat gpt-4o-mini", attributes={**GENAI, "error.type": "rate_limited"}
    ) as failing:
        failing.set_status(Status(StatusCode.ERROR, "429"))
    with tracer.start_as_current_span("GET /health", attributes={"http.route": "/health"}):
        pass
    provider.shutdown()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_exporters_reach_kafka_as_telemetry(
    transport: str, kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    service = f"sdk-{transport}"

    async def scenario(c: Collector) -> None:
        exporter: SpanExporter = (
            HttpExporter(endpoint=f"http://127.0.0.1:{c.http_port}/v1/traces")
            if transport == "http"
            else GrpcExporter(endpoint=f"127.0.0.1:{c.grpc_port}", insecure=True)
        )
        await asyncio.to_thread(_emit, exporter, service)

    run(settings_for(kafka_bootstrap, topics, tmp_path), scenario)
    records = read_topic(kafka_bootstrap, topics["telemetry"], 2)
    events = sorted((json.loads(v) for _, v, _ in records), key=lambda e: e["status"])
    assert {k for k, _, _ in records} == {service.encode()}
    for event in events:
        assert (event["app"], event["task"], event["model"]) == (service, "classify", "gpt-4o-mini")
        assert (event["provider"], event["input_tokens"], event["output_tokens"]) == (
            "openai",
            120,
            30,
        )
        assert event["latency_ms"] >= 0
    assert [e["status"] for e in events] == ["error", "ok"]
    assert events[0]["error_type"] == "rate_limited"
    assert events[1]["finish_reason"] == "stop"
