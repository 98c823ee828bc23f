"""Apps instrumented with GenAI OpenTelemetry libraries reach the collector without the SDK.

The real ``openai`` client calls a local fake provider under the instrumentation; its spans,
metrics and logs go through the stock OTLP/HTTP exporters to the real collector, whose events
are read back from Kafka. The SDK's own :class:`llmopt_client.otel.OtelReporter` is checked the
same way (its spans carry task, variant, config version, request id, time to first chunk and
paired shadow scores).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from llmopt_client import LlmoptClient, RoutingTable, decode_config
from llmopt_client.otel import OtelReporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from collector import Collector
from tests.fake_openai import FakeOpenAI, fake_openai
from tests.integration.test_collector import read_topic, run, settings_for
from tests.wheels import ROOT

pytestmark = pytest.mark.integration
CALLS = 10
STREAMS = 2


def _providers(port: int, service: str) -> tuple[TracerProvider, MeterProvider, LoggerProvider]:
    base = f"http://127.0.0.1:{port}"
    resource = Resource.create({"service.name": service})
    tracer = TracerProvider(resource=resource)
    tracer.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics"), export_interval_millis=3_600_000
    )
    meter = MeterProvider(resource=resource, metric_readers=[reader])
    logger = LoggerProvider(resource=resource)
    logger.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs"))
    )
    return tracer, meter, logger


def _calls(provider: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=provider.base_url, api_key="test", max_retries=0)
    for i in range(CALLS):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"hello number {i}"}]
        )
    for _ in range(STREAMS):
        stream = client.chat.completions.create(
            model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "stream me"}],
        )  # fmt: skip
        for _chunk in stream:
            pass


def _metric(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in exposition.splitlines():
        match = re.match(rf"^{name}{{(.*)}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_openai_v2_instrumentation_reaches_the_collector(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    service = "openai-v2-app"
    out: dict[str, Any] = {}

    async def scenario(c: Collector) -> None:
        tracer, meter, logger = _providers(c.http_port, service)
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(
            tracer_provider=tracer, meter_provider=meter, logger_provider=logger
        )
        try:
            with fake_openai() as provider:
                await asyncio.to_thread(_calls, provider)
            assert await asyncio.to_thread(meter.force_flush, 60_000)
            app_log = logger.get_logger("app")  # what the app logs next to the instrumentation
            app_log.emit(event_name="gen_ai.client.inference.operation.details", body="details")
            app_log.emit(body="an ordinary log line")
        finally:
            instrumentor.uninstrument()
            await asyncio.to_thread(tracer.shutdown)
            await asyncio.to_thread(meter.shutdown)
            await asyncio.to_thread(logger.shutdown)
        out["metrics"] = c.ingest.metrics.exposition().decode()

    run(settings_for(kafka_bootstrap, topics, tmp_path), scenario)
    events = [
        json.loads(v)
        for _, v, _ in read_topic(kafka_bootstrap, topics["telemetry"], CALLS + STREAMS)
    ]
    assert len(events) == CALLS + STREAMS
    for e in events:
        assert (e["app"], e["model"], e["provider"], e["status"]) == (
            service,
            "gpt-4o-mini",
            "openai",
            "ok",
        )
        assert e["output_tokens"] == 3
        assert e["input_tokens"] in (2, 3)
        assert e["latency_ms"] > 0
    metrics = out["metrics"]
    assert _metric(metrics, "collector_otlp_metric_points_total", kind="genai") > 0
    usage = _metric(
        metrics, "collector_genai_metric_sum_total", metric="gen_ai.client.token.usage",
        model="gpt-4o-mini", token_type="output",
    )  # fmt: skip
    assert usage == 3 * (CALLS + STREAMS)
    duration = _metric(
        metrics, "collector_genai_metric_count_total", metric="gen_ai.client.operation.duration",
        model="gpt-4o-mini",
    )  # fmt: skip
    assert duration == CALLS + STREAMS
    logs = _metric(metrics, "collector_otlp_log_records_total", kind="genai")
    other = _metric(metrics, "collector_otlp_log_records_total", kind="other")
    assert logs >= 1  # the app's event (and the instrumentation's, if it emits any)
    assert other == 1


def test_the_sdk_otel_reporter_reaches_the_collector_with_its_tags(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    service = "sdk-otel-app"
    config = decode_config(
        json.dumps(
            {
                "app": service,
                "version": 5,
                "tasks": {
                    "classify": {
                        "model": "gpt-4o",
                        "canary": {
                            "version": 6,
                            "weight": 1.0,
                            "overrides": {"model": "gpt-4o-mini"},
                        },
                        "shadow": {"model": "gpt-4.1-nano", "share": 1.0},
                    }
                },
            }
        ).encode()
    )

    async def scenario(c: Collector) -> None:
        tracer, meter, logger = _providers(c.http_port, service)
        reporter = OtelReporter(tracer)

        def calls() -> None:
            with fake_openai() as provider:
                from llmopt_client.adapters.openai import wrap_openai

                llmopt = LlmoptClient(
                    service, api_url="http://127.0.0.1:9", reporter=reporter, start=False
                )
                llmopt._watcher.table = RoutingTable(config)  # as if fetched
                client = wrap_openai(
                    openai.OpenAI(base_url=provider.base_url, api_key="t", max_retries=0), llmopt
                )
                stream = client.chat.completions.create(
                    task="classify", request_id="otel-1", model="x", stream=True,
                    messages=[{"role": "user", "content": "a b"}],
                )  # fmt: skip
                for _ in stream:
                    pass
                route = llmopt.route("classify", "otel-1")
                llmopt.shadow(route, run=lambda m: m, score=lambda m: 1.0)
                llmopt.flush(60)
                llmopt.feedback("otel-1", 0.25, task="classify")
                llmopt.close()

        await asyncio.to_thread(calls)
        for provider in (tracer, meter, logger):
            await asyncio.to_thread(provider.shutdown)

    run(settings_for(kafka_bootstrap, topics, tmp_path), scenario)
    events = [json.loads(v) for _, v, _ in read_topic(kafka_bootstrap, topics["telemetry"], 2)]
    call = next(e for e in events if e["kind"] == "llm_call")
    fb = next(e for e in events if e["kind"] == "feedback")
    assert (call["app"], call["task"], call["model"], call["variant"], call["config_version"]) == (
        service, "classify", "gpt-4o-mini", "canary", 6,
    )  # fmt: skip
    assert (call["request_id"], call["input_tokens"], call["output_tokens"]) == ("otel-1", 2, 3)
    assert 0 < call["ttft_ms"] <= call["latency_ms"]
    assert (fb["request_id"], fb["quality"], fb["task"]) == ("otel-1", 0.25, "classify")
    assert (fb["shadow_model"], fb["shadow_quality"]) == ("gpt-4.1-nano", 1.0)


@pytest.mark.parametrize("library", ["openlit", "traceloop"])
def test_openlit_and_openllmetry_reach_the_collector(
    library: str, kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    prices = tmp_path / "pricing.json"  # openlit's own format (USD per 1k tokens), read offline
    prices.write_text(
        json.dumps({"chat": {"gpt-4o-mini": {"promptPrice": 0.00015, "completionPrice": 0.0006}}})
    )
    out: dict[str, Any] = {}

    async def scenario(c: Collector) -> None:
        with fake_openai() as provider:
            done = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable, "-m", "tests.genai_app", library, provider.base_url,
                    f"http://127.0.0.1:{c.http_port}", str(CALLS), str(STREAMS), str(prices),
                ],
                cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
                env={**os.environ, "TRACELOOP_TELEMETRY": "false", "HOME": str(tmp_path)},
            )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        out["stderr"] = done.stderr
        out["metrics"] = c.ingest.metrics.exposition().decode()

    run(settings_for(kafka_bootstrap, topics, tmp_path), scenario)
    events = [
        json.loads(v)
        for _, v, _ in read_topic(kafka_bootstrap, topics["telemetry"], CALLS + STREAMS)
    ]
    app = f"{library}-app"
    assert len(events) == CALLS + STREAMS
    for e in events:
        assert (e["app"], e["model"], e["provider"], e["status"]) == (
            app,
            "gpt-4o-mini",
            "openai",
            "ok",
        )
        assert e["output_tokens"] == 3
        assert e["input_tokens"] in (2, 3)
        assert e["latency_ms"] > 0
    streamed = [e for e in events if e["input_tokens"] == 2]
    assert len(streamed) == STREAMS
    if library == "openlit":  # openlit reports its cost and the time to first token
        assert all(e["cost_usd"] > 0 for e in events)
        assert all(0 < e["ttft_ms"] <= e["latency_ms"] for e in streamed)
    assert "404" not in out["stderr"]  # metrics and logs exports were accepted


def test_otlp_grpc_metrics_and_logs_are_accepted_and_counted(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
        OTLPLogExporter as GrpcLogExporter,
    )
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
        OTLPMetricExporter as GrpcMetricExporter,
    )

    out: dict[str, Any] = {}

    def emit(port: int) -> None:
        target = f"127.0.0.1:{port}"
        reader = PeriodicExportingMetricReader(
            GrpcMetricExporter(endpoint=target, insecure=True), export_interval_millis=3_600_000
        )
        meter = MeterProvider(
            resource=Resource.create({"service.name": "grpc-app"}), metric_readers=[reader]
        )
        usage = meter.get_meter("app").create_histogram("gen_ai.client.token.usage")
        for tokens in (10, 20, 30):
            usage.record(tokens, {"gen_ai.request.model": "gpt-4o", "gen_ai.token.type": "input"})
        assert meter.force_flush(60_000)
        meter.shutdown()
        logger = LoggerProvider()
        logger.add_log_record_processor(
            SimpleLogRecordProcessor(GrpcLogExporter(endpoint=target, insecure=True))
        )
        logger.get_logger("app").emit(event_name="gen_ai.choice", body="x")
        logger.shutdown()

    async def scenario(c: Collector) -> None:
        await asyncio.to_thread(emit, c.grpc_port)
        out["metrics"] = c.ingest.metrics.exposition().decode()

    run(settings_for(kafka_bootstrap, topics, tmp_path), scenario)
    metrics = out["metrics"]
    labels = {"metric": "gen_ai.client.token.usage", "model": "gpt-4o", "token_type": "input"}
    assert _metric(metrics, "collector_genai_metric_sum_total", **labels) == 60.0
    assert _metric(metrics, "collector_genai_metric_count_total", **labels) == 3.0
    assert _metric(metrics, "collector_otlp_log_records_total", kind="genai") == 1.0
