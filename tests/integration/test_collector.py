"""The collector on the real tansu broker: OTLP/HTTP and OTLP/gRPC in, Kafka out, nothing lost."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector import Collector, Source, TelemetryIngest
from collector.otlp_mapping import map_request
from core.errors import OverloadedError
from core.settings import (
    ApiSettings,
    CollectorSettings,
    KafkaSettings,
    Settings,
    StorageSettings,
    updated,
)
from storage.kafka import EmbeddedBroker, ensure_topics, free_port
from tests.unit.collector.spans import T0_NS, chat_attrs, event_id, request, span

pytestmark = pytest.mark.integration

PROTO = {"content-type": "application/x-protobuf"}
JSON_CT = {"content-type": "application/json"}


def settings_for(
    bootstrap: str, topics: dict[str, str], data_dir: Path, **collector: Any
) -> Settings:
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap,
            telemetry_topic=topics["telemetry"],
            dlq_topic=topics["dlq"],
        ),
        storage=StorageSettings(data_dir=str(data_dir)),
        collector=CollectorSettings(http_port=0, grpc_port=0, **collector),
    )


def read_topic(
    bootstrap: str, topic: str, count: int, timeout: float = 30.0
) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    """Exactly ``count`` records of ``topic`` (every partition from the start), or fail."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    out: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        out.append((msg.key(), msg.value(), dict(msg.headers() or [])))
    # Nothing more than expected arrives (no duplicates).
    extra = consumer.poll(1.0)
    consumer.close()
    assert len(out) == count, f"{len(out)} of {count} records in {topic}"
    assert extra is None or extra.error(), f"unexpected extra record {extra.value()!r}"
    return out


def run(
    settings: Settings,
    scenario: Callable[[Collector], Awaitable[Any]],
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    async def main() -> Any:
        collector = Collector(settings, clock=clock)
        await collector.start()
        try:
            return await scenario(collector)
        finally:
            await collector.stop()

    return asyncio.run(main())


def otlp_json(req: Any) -> bytes:
    """The OTLP JSON encoding of a request: hex ids, int64 as strings."""
    tree = json_format.MessageToDict(req)
    for rs in tree["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for key in ("traceId", "spanId"):
                    s[key] = base64.b64decode(s[key]).hex()
    return json.dumps(tree).encode()


def test_otlp_http_protobuf_json_and_gzip_reach_kafka(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    evaluation = ("gen_ai.evaluation.result", T0_NS + 10**9, {"gen_ai.evaluation.score.value": 0.9})
    protobuf_req = request(
        "support",
        [span(1, chat_attrs(1)), span(2, {"http.route": "/x"}), span(3, chat_attrs(3))],
    )
    json_req = request("support", [span(4, chat_attrs(4, **{"llmopt.variant": "canary"}))])
    gzip_req = request("billing", [span(5, chat_attrs(5), events=[evaluation])])

    async def scenario(c: Collector) -> list[httpx.Response]:
        url = f"http://127.0.0.1:{c.http_port}/v1/traces"
        async with httpx.AsyncClient() as client:
            return [
                await client.post(url, content=protobuf_req.SerializeToString(), headers=PROTO),
                await client.post(url, content=otlp_json(json_req), headers=JSON_CT),
                await client.post(
                    url,
                    content=gzip.compress(gzip_req.SerializeToString()),
                    headers={**PROTO, "content-encoding": "gzip"},
                ),
                await client.get(f"http://127.0.0.1:{c.http_port}/metrics"),
            ]

    settings = settings_for(kafka_bootstrap, topics, tmp_path)
    first, second, third, metrics = run(settings, scenario)
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 200)
    assert ExportTraceServiceResponse.FromString(first.content) == ExportTraceServiceResponse()
    assert second.json() == {}
    assert second.headers["content-type"] == "application/json"
    records = read_topic(kafka_bootstrap, topics["telemetry"], 5)
    got = {json.loads(value)["event_id"]: (key, json.loads(value)) for key, value, _ in records}
    now = datetime.now(UTC)
    expected = [
        *map_request(protobuf_req, now).events,
        *map_request(json_req, now).events,
        *map_request(gzip_req, now).events,
    ]
    assert got == {e["event_id"]: (e["app"].encode(), e) for e in expected}
    assert got[event_id(1)][1] == {
        "kind": "llm_call",
        "event_id": event_id(1),
        "timestamp": "2026-11-29T10:00:00.812000Z",
        "app": "support",
        "model": "gpt-4o-mini",
        "latency_ms": 812.0,
        "operation": "chat",
        "provider": "openai",
        "task": "classify",
        "input_tokens": 101,
        "output_tokens": 11,
        "status": "ok",
        "request_id": event_id(1),
        "attributes": {"otel.trace_id": f"{1:032x}", "otel.span_id": f"{1 + 0xABC000:016x}"},
    }
    assert got[event_id(4)][1]["variant"] == "canary"
    assert got[event_id(5) + "-eval-0"][1]["quality"] == 0.9
    assert 'collector_spans_received_total{transport="otlp_http"} 5.0' in metrics.text
    assert 'collector_spans_ignored_total{transport="otlp_http"} 1.0' in metrics.text
    assert 'collector_events_accepted_total{transport="otlp_http"} 5.0' in metrics.text
    assert "collector_breaker_state 0.0" in metrics.text


def test_otlp_grpc_export_and_partial_success(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    good = request("agent", [span(10, chat_attrs(10)), span(11, chat_attrs(11))])
    no_usage = {"gen_ai.request.model": "gpt-4o"}  # an ok call without tokens: invalid
    partial = request("agent", [span(12, chat_attrs(12)), span(13, no_usage)])

    async def scenario(c: Collector) -> list[ExportTraceServiceResponse]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{c.grpc_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            return [await stub.Export(good), await stub.Export(partial)]

    first, second = run(settings_for(kafka_bootstrap, topics, tmp_path), scenario)
    assert first == ExportTraceServiceResponse()
    assert second.partial_success.rejected_spans == 1
    reason = "invalid event: llm_call requires `$.input_tokens`, `$.output_tokens`"
    assert second.partial_success.error_message == f"1 event(s) invalid: {reason}"
    records = read_topic(kafka_bootstrap, topics["telemetry"], 3)
    assert sorted(json.loads(v)["event_id"] for _, v, _ in records) == [
        event_id(10),
        event_id(11),
        event_id(12),
    ]
    ((key, value, headers),) = read_topic(kafka_bootstrap, topics["dlq"], 1)
    assert key is None
    assert json.loads(value)["event_id"] == event_id(13)
    # a W3C traceparent rides along when a recording tracer provider is installed (another
    # test of this process may have installed one): the DLQ's own headers are the contract
    headers.pop("traceparent", None)
    assert headers == {
        "reason": reason.encode(),
        "source.transport": b"otlp_grpc",
        "source.identity": b"service:agent",
        "source.index": b"1",
    }


def test_malformed_payloads_get_400_and_land_in_the_dlq(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    async def scenario(c: Collector) -> tuple[httpx.Response, httpx.Response, Any]:
        url = f"http://127.0.0.1:{c.http_port}/v1/traces"
        async with httpx.AsyncClient() as client:
            bad_json = await client.post(
                url, content=b'{"resourceSpans": 7}', headers={**JSON_CT, "x-api-key": "k1"}
            )
            bad_proto = await client.post(url, content=b"\xff\xfe garbage", headers=PROTO)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{c.grpc_port}") as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await export(b"\x0a\xff\xff")
        return bad_json, bad_proto, err.value

    bad_json, bad_proto, rpc_error = run(settings_for(kafka_bootstrap, topics, tmp_path), scenario)
    assert bad_json.status_code == 400
    assert bad_json.json()["code"] == 3
    assert bad_json.json()["message"].startswith("body is not OTLP JSON")
    assert bad_proto.status_code == 400
    assert rpc_error.code() == grpc.StatusCode.INVALID_ARGUMENT
    dead = read_topic(kafka_bootstrap, topics["dlq"], 3)
    by_value = {value: headers for _, value, headers in dead}
    assert set(by_value) == {b'{"resourceSpans": 7}', b"\xff\xfe garbage", b"\x0a\xff\xff"}
    headers = by_value[b'{"resourceSpans": 7}']
    assert headers["reason"].startswith(b"body is not OTLP JSON")
    assert headers["source.transport"] == b"otlp_http"
    assert headers["source.identity"].startswith(b"key:")
    assert by_value[b"\x0a\xff\xff"]["source.transport"] == b"otlp_grpc"
    assert by_value[b"\xff\xfe garbage"]["reason"].startswith(b"body is not an OTLP protobuf")


def test_ingest_api_for_rest_and_grpc_callers(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    valid = (
        b'{"event_id": "r1", "timestamp": 1795946400000, "app": "api-app", "model": "m", '
        b'"latency_ms": 5, "input_tokens": 1, "output_tokens": 2}'
    )
    as_dict = {
        "event_id": "r2",
        "timestamp": "2026-11-29T10:00:00Z",
        "app": "api-app",
        "kind": "feedback",
        "request_id": "r1",
        "quality": 1,
    }
    invalid = b'{"event_id": "r3", "app": "api-app"}'

    async def scenario(c: Collector) -> Any:
        return await c.ingest.submit([valid, as_dict, invalid], Source("rest", "key:abc"))

    result = run(settings_for(kafka_bootstrap, topics, tmp_path), scenario)
    assert result.accepted == 2
    assert [(r.index, r.reason) for r in result.rejected] == [
        (2, "invalid event: Object missing required field `timestamp`")
    ]
    records = read_topic(kafka_bootstrap, topics["telemetry"], 2)
    assert sorted(v for _, v, _ in records) == sorted(
        [valid, json.dumps(as_dict, separators=(",", ":")).encode()]
    )
    assert {k for k, _, _ in records} == {b"api-app"}
    ((_, value, headers),) = read_topic(kafka_bootstrap, topics["dlq"], 1)
    assert value == invalid
    assert headers["source.identity"] == b"key:abc"


async def _async_wait(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def test_broker_outage_spills_and_replays_in_order_none_lost(tmp_path: Path) -> None:
    """Stop the broker, keep sending: everything spills; restart: all of it arrives, in order."""
    broker = EmbeddedBroker()
    broker.start()
    topics = {"telemetry": "llm.telemetry.outage", "dlq": "llm.telemetry.outage.dlq"}
    ensure_topics(broker.bootstrap, {topics["telemetry"]: 1, topics["dlq"]: 1})
    settings = settings_for(
        broker.bootstrap,
        topics,
        tmp_path,
        breaker_failure_threshold=1,
        breaker_reset_timeout=timedelta(seconds=1),
        delivery_timeout=timedelta(seconds=3),
    )
    batches, per_batch = 20, 50

    async def scenario(c: Collector) -> dict[str, str]:
        url = f"http://127.0.0.1:{c.http_port}/v1/traces"
        async with httpx.AsyncClient(timeout=30) as client:
            first = request("outage-app", [span(0, chat_attrs(0))])
            ok = await client.post(url, content=first.SerializeToString(), headers=PROTO)
            assert ok.status_code == 200
            await asyncio.to_thread(broker.stop)
            for b in range(batches):
                spans = [span(1 + b * per_batch + i, chat_attrs(i)) for i in range(per_batch)]
                body = request("outage-app", spans).SerializeToString()
                response = await client.post(url, content=body, headers=PROTO)
                assert response.status_code == 200, response.content
            during = c.ingest.health()
            restarted = EmbeddedBroker(broker.port)
            await asyncio.to_thread(restarted.start)
            try:  # in memory: the topics are gone; the collector creates them again
                await _async_wait(lambda: c.ingest.health()["spill_records"] == "0", "replay")
                after = c.ingest.health()
                records = await asyncio.to_thread(
                    read_topic, restarted.bootstrap, topics["telemetry"], batches * per_batch
                )
                meta = await asyncio.to_thread(
                    lambda: (
                        AdminClient({"bootstrap.servers": restarted.bootstrap})
                        .list_topics(timeout=10)
                        .topics
                    )
                )
                partitions = {t: len(meta[t].partitions) for t in topics.values() if t in meta}
            finally:
                await asyncio.to_thread(restarted.stop)
        return {"during": during, "after": after, "records": records, "partitions": partitions}  # type: ignore[dict-item]

    try:
        out = run(settings, scenario)
    finally:
        broker.stop()
    assert out["during"]["breaker"] in ("open", "half_open")
    assert int(out["during"]["spill_records"]) == batches * per_batch
    assert out["after"]["breaker"] == "closed"
    # the configured count (kafka.partitions), not the broker's auto-created default (tansu: 4)
    assert out["partitions"] == {t: settings.kafka.partitions for t in topics.values()}
    ids = [json.loads(value)["event_id"] for _, value, _ in out["records"]]  # type: ignore[attr-defined]
    assert ids == [event_id(n) for n in range(1, 1 + batches * per_batch)]
    assert not list((tmp_path / "collector-spill").rglob("*.spill"))


def test_full_spill_buffer_refuses_with_429_and_keeps_what_it_accepted(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: every delivery fails
    topics = {"telemetry": "t", "dlq": "d"}
    settings = settings_for(
        dead,
        topics,
        tmp_path,
        breaker_failure_threshold=1,
        breaker_reset_timeout=timedelta(seconds=60),
        delivery_timeout=timedelta(seconds=2),
        spill_max_bytes=20_000,
        spill_segment_bytes=4096,
    )

    async def scenario(c: Collector) -> tuple[list[int], httpx.Response, dict[str, str]]:
        url = f"http://127.0.0.1:{c.http_port}/v1/traces"
        statuses: list[int] = []
        refused = None
        async with httpx.AsyncClient(timeout=30) as client:
            for b in range(100):
                body = request("full", [span(b * 10 + i, chat_attrs(i)) for i in range(10)])
                response = await client.post(url, content=body.SerializeToString(), headers=PROTO)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    refused = response
                    break
        assert refused is not None, "never refused"
        return statuses, refused, c.ingest.health()

    statuses, refused, health = run(settings, scenario)
    accepted = statuses.count(200)
    assert statuses == [200] * accepted + [429]
    assert accepted >= 2
    assert int(refused.headers["retry-after"]) >= 5
    assert refused.content.startswith(b"\x08\x08")  # google.rpc.Status code 8 RESOURCE_EXHAUSTED
    assert int(health["spill_records"]) == accepted * 10  # every accepted event is on disk
    assert health["breaker"] == "open"


def test_rate_limit_answers_429_with_retry_after(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    settings = settings_for(
        kafka_bootstrap, topics, tmp_path, source_rate=1.0, source_burst=20, global_rate=0
    )

    async def scenario(c: Collector) -> list[httpx.Response]:
        url = f"http://127.0.0.1:{c.http_port}/v1/traces"
        out = []
        async with httpx.AsyncClient() as client:
            for b in range(3):
                body = request(
                    "limited", [span(100 + b * 10 + i, chat_attrs(i)) for i in range(10)]
                )
                out.append(await client.post(url, content=otlp_json(body), headers=JSON_CT))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{c.grpc_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Export(request("limited", [span(200, chat_attrs(0))]))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(err.value.trailing_metadata() or ())
        assert b"type.googleapis.com/google.rpc.RetryInfo" in trailers["grpc-status-details-bin"]
        return out

    # The limiter's clock stands still: however slow the machine, no cell refills in between.
    first, second, third = run(settings, scenario, clock=lambda: 1000.0)
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert int(third.headers["retry-after"]) == 10  # 10 events at 1/s
    body = third.json()
    assert body["code"] == 8
    assert body["message"] == "rate limit exceeded for service:limited"
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    assert len(read_topic(kafka_bootstrap, topics["telemetry"], 20)) == 20


def _limited(
    bootstrap: str, topics: dict[str, str], data_dir: Path, redis: str, prefix: str
) -> Settings:
    settings = settings_for(
        bootstrap, topics, data_dir, source_rate=0.001, source_burst=20, global_rate=0
    )
    return settings.with_overrides(
        storage=StorageSettings(data_dir=str(data_dir), redis_url=redis),
        api=updated(ApiSettings(), rate_limit__prefix=prefix),
    )


def _batch(tag: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{tag}-{i}",
            "timestamp": "2026-11-29T10:00:00Z",
            "app": "shared-app",
            "model": "m",
            "latency_ms": 5,
            "input_tokens": 1,
            "output_tokens": 2,
        }
        for i in range(n)
    ]


def test_rate_limit_is_one_limit_across_replicas_with_redis(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path, redis_url: str
) -> None:
    """Two collector replicas on one Redis admit one source's burst once, not twice."""
    prefix = f"llmopt:test:{uuid.uuid4().hex[:12]}"
    source = Source("otlp_http", "service:shared")

    async def main() -> list[str]:
        replicas = [
            TelemetryIngest(
                _limited(kafka_bootstrap, topics, tmp_path / f"r{i}", redis_url, prefix)
            )
            for i in range(2)
        ]
        for ingest in replicas:
            await ingest.start()
        outcomes = []
        try:
            # 0.001 events/s: no cell refills during the test, however slow the machine.
            for replica, tag in ((0, "a"), (1, "b"), (0, "c"), (1, "d")):
                try:
                    await replicas[replica].submit(_batch(tag, 10), source)
                    outcomes.append(f"{replica}:ok")
                except OverloadedError as exc:
                    outcomes.append(f"{replica}:refused {exc.retry_after:.0f}s")
        finally:
            for ingest in replicas:
                await ingest.stop()
        return outcomes

    outcomes = asyncio.run(main())
    # Burst 20 for the source over both replicas: two batches of 10, then each is refused.
    assert outcomes[:2] == ["0:ok", "1:ok"]
    assert [o.split()[0] for o in outcomes[2:]] == ["0:refused", "1:refused"]
    assert float(outcomes[2].split()[1][:-1]) >= 9_000  # 10 more events at 0.001/s
    assert len(read_topic(kafka_bootstrap, topics["telemetry"], 20)) == 20


def test_rate_limit_falls_back_to_the_process_when_redis_is_down(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path
) -> None:
    """Redis unreachable: the in-process limiter decides (still a limit) and it is counted."""
    down = f"redis://127.0.0.1:{free_port()}/0"
    settings = _limited(kafka_bootstrap, topics, tmp_path, down, "llmopt:test:down")
    source = Source("rest", "key:k1")

    async def main() -> tuple[list[bool], float]:
        ingest = TelemetryIngest(settings, clock=lambda: 1000.0)
        await ingest.start()
        admitted = []
        try:
            for tag in ("a", "b", "c"):
                try:
                    await ingest.submit(_batch(tag, 10), source)
                    admitted.append(True)
                except OverloadedError:
                    admitted.append(False)
        finally:
            await ingest.stop()
        fallbacks = ingest.metrics.registry.get_sample_value("collector_rate_limit_fallbacks_total")
        return admitted, fallbacks or 0.0

    admitted, fallbacks = asyncio.run(main())
    assert admitted == [True, True, False]
    assert fallbacks == 3
