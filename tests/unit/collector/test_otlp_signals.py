"""OTLP metrics and logs accepted and counted; GenAI aggregates kept; openlit's TTFT mapped."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
)
from prometheus_client import CollectorRegistry

from collector.http_receiver import OtlpHttpApp
from collector.otlp_mapping import map_request
from collector.otlp_signals import SignalMetrics
from collector.pipeline import TelemetryIngest
from core.settings import Settings, StorageSettings
from tests.unit.collector.spans import chat_attrs, kvs, request, span

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
USAGE = "gen_ai.client.token.usage"


def _histogram(
    name: str, points: list[tuple[dict[str, Any], float, int]], temporality: int, start: int = 1
) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(kvs({"service.name": "shop"}))
    metric = rm.scope_metrics.add().metrics.add()
    metric.name = name
    metric.histogram.aggregation_temporality = temporality
    for attrs, total, count in points:
        point = metric.histogram.data_points.add()
        point.attributes.extend(kvs(attrs))
        point.start_time_unix_nano = start
        point.sum, point.count = total, count
    return req


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_cumulative_streams_are_counted_once_and_delta_streams_added() -> None:
    registry = CollectorRegistry()
    signals = SignalMetrics(registry)
    attrs = {"gen_ai.request.model": "gpt-4o", "gen_ai.token.type": "input"}
    labels = {"metric": USAGE, "model": "gpt-4o", "token_type": "input"}
    cumulative = AGGREGATION_TEMPORALITY_CUMULATIVE
    signals.metrics(_histogram(USAGE, [(attrs, 100.0, 2)], cumulative))
    signals.metrics(_histogram(USAGE, [(attrs, 250.0, 5)], cumulative))  # +150 in 3 calls
    assert _value(registry, "collector_genai_metric_sum_total", **labels) == 250.0
    assert _value(registry, "collector_genai_metric_count_total", **labels) == 5.0
    signals.metrics(_histogram(USAGE, [(attrs, 10.0, 1)], cumulative))  # the app restarted
    assert _value(registry, "collector_genai_metric_sum_total", **labels) == 260.0
    delta = AGGREGATION_TEMPORALITY_DELTA
    signals.metrics(_histogram(USAGE, [(attrs, 7.0, 1)], delta))
    signals.metrics(_histogram(USAGE, [(attrs, 7.0, 1)], delta))
    assert _value(registry, "collector_genai_metric_sum_total", **labels) == 274.0
    counts = signals.metrics(_histogram("http.client.duration", [({}, 1.0, 1)], delta))
    assert (counts.genai, counts.other) == (0, 1)
    assert _value(registry, "collector_otlp_metric_points_total", kind="genai") == 5.0
    assert _value(registry, "collector_otlp_metric_points_total", kind="other") == 1.0


def _call(app: OtlpHttpApp, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": path,
        "headers": [(b"content-type", content_type.encode())],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"]


def test_the_http_receiver_accepts_metrics_and_logs_in_protobuf_and_json(tmp_path: Path) -> None:
    # The real pipeline, never started: metrics and logs never reach Kafka.
    ingest = TelemetryIngest(Settings(storage=StorageSettings(data_dir=str(tmp_path))))
    app = OtlpHttpApp(ingest, 1 << 20)
    body = _histogram(USAGE, [({"gen_ai.token.type": "output"}, 3.0, 1)], 1).SerializeToString()
    assert _call(app, "/v1/metrics", body, "application/x-protobuf") == (200, b"")
    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add().log_records
    records.add().event_name = "gen_ai.choice"
    records.add().body.string_value = "hello"
    as_json = json.dumps(json_format.MessageToDict(logs)).encode()
    assert _call(app, "/v1/logs", as_json, "application/json") == (200, b"{}")
    status, problem = _call(app, "/v1/logs", b"{not json", "application/json")
    assert status == 400
    assert "not JSON" in json.loads(problem)["message"]
    reg = ingest.metrics.registry
    assert _value(reg, "collector_otlp_log_records_total", kind="genai") == 1.0
    assert _value(reg, "collector_otlp_log_records_total", kind="other") == 1.0
    assert _value(reg, "collector_otlp_metric_points_total", kind="genai") == 1.0


def test_openlit_time_to_first_token_and_cost_are_mapped() -> None:
    openlit = {"gen_ai.server.time_to_first_token": 0.125, "gen_ai.usage.cost": 0.0021}
    attrs = chat_attrs(1, **openlit)
    (event,) = map_request(request("shop", [span(1, attrs)]), NOW).events
    assert (event["ttft_ms"], event["cost_usd"]) == (125.0, 0.0021)
    both = chat_attrs(2, **{"gen_ai.server.time_to_first_token": 0.5, "llmopt.ttft_ms": 80.0})
    (event,) = map_request(request("shop", [span(2, both)]), NOW).events
    assert event["ttft_ms"] == 80.0  # the explicit milliseconds win
