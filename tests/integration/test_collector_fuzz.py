"""The OTLP receivers under fuzzed input, on the real tansu broker: never a 5xx to a client's bytes.

Hypothesis generates OTLP/HTTP bodies (OTLP JSON with arbitrary values in every place, protobuf
bytes, random bytes, deep nesting, huge numbers and strings, gzip'd or not, decompression bombs,
bodies beyond the limit) and sends them to one running collector over HTTP, a smaller set over
real gRPC. Every answer is 2xx or 4xx (gRPC: OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED), the
receiver keeps serving, and a valid span sent after each fuzzed body arrives on the topic.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector import Collector
from collector.grpc_receiver import SERVICE_NAME
from collector.otlp_decode import MAX_JSON_DEPTH
from collector.pipeline import MAX_RECORD_BYTES
from storage.kafka import ensure_topics
from tests.integration.test_collector import otlp_json, settings_for
from tests.unit.collector.spans import chat_attrs, event_id, request, span

pytestmark = pytest.mark.integration

LIMIT = 2 * 1024 * 1024  # collector.max_request_bytes of the fuzzed collector
PROTO = "application/x-protobuf"
JSON_CT = "application/json"
SPAN_IDS = itertools.count(1_000_000)
CLIENT = httpx.Client()  # one connection pool: a client per request costs ~70 ms of setup


@dataclass
class Running:
    """A collector served from its own event loop in a thread."""

    collector: Collector
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.collector.http_port}"


@pytest.fixture(scope="module")
def topics_m(kafka_bootstrap: str) -> dict[str, str]:
    """Fresh telemetry and DLQ topics for this module."""
    suffix = uuid.uuid4().hex[:8]
    names = {"telemetry": f"llm.telemetry.fz{suffix}", "dlq": f"llm.telemetry.dlq.fz{suffix}"}
    ensure_topics(kafka_bootstrap, {names["telemetry"]: 3, names["dlq"]: 1})
    return names


@pytest.fixture(scope="module")
def running(
    kafka_bootstrap: str, topics_m: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    settings = settings_for(
        kafka_bootstrap,
        topics_m,
        tmp_path_factory.mktemp("fuzz"),
        max_request_bytes=LIMIT,
        source_rate=0,
        global_rate=0,
    )
    loop = asyncio.new_event_loop()
    started: Future[Collector] = Future()
    stopped = asyncio.Event()

    async def main() -> None:
        collector = Collector(settings)
        await collector.start()
        started.set_result(collector)
        await stopped.wait()
        await collector.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    yield Running(started.result(timeout=60), loop)
    loop.call_soon_threadsafe(stopped.set)
    thread.join(30)


# --- strategies ------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63, 2**64 + 1, -(2**63) - 1, 10**30])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "9" * 40, "", "\x00", "zz"])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
ANY_VALUE = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "stringValue": JSON_VALUES,
            "intValue": JSON_VALUES,
            "doubleValue": JSON_VALUES,
            "boolValue": JSON_VALUES,
            "bytesValue": JSON_VALUES,
        },
    ),
    lambda inner: (
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3))
        | st.builds(
            lambda kv: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kv]}},
            st.lists(st.tuples(st.text(max_size=8), inner), max_size=3),
        )
    ),
    max_leaves=10,
)
GENAI_KEYS = st.sampled_from(
    [
        "gen_ai.request.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "llmopt.cost_usd",
        "llmopt.quality",
        "llmopt.config_version",
        "llmopt.variant",
        "llmopt.request_id",
        "gen_ai.response.finish_reasons",
        "gen_ai.response.time_to_first_chunk",
        "gen_ai.request.temperature",
        "error.type",
    ]
)
SPAN_FIELD = st.sampled_from(
    ["traceId", "spanId", "startTimeUnixNano", "endTimeUnixNano", "name", "status", "events"]
)


@st.composite
def otlp_json_trees(draw: st.DrawFn) -> dict[str, Any]:
    """OTLP JSON with arbitrary values where the attributes and fields go."""
    attrs = [
        {"key": draw(GENAI_KEYS | st.text(max_size=10)), "value": draw(ANY_VALUE | JSON_VALUES)}
        for _ in range(draw(st.integers(0, 6)))
    ]
    one: dict[str, Any] = {
        "traceId": draw(st.sampled_from(["ab" * 16, "zz", "", "a" * 33]) | JSON_VALUES),
        "spanId": draw(st.sampled_from(["cd" * 8, "1"]) | JSON_VALUES),
        "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "m"}}, *attrs],
    }
    for name in draw(st.lists(SPAN_FIELD, max_size=3)):
        one[name] = draw(JSON_VALUES)
    service = draw(st.sampled_from([{"stringValue": "fuzz"}]) | ANY_VALUE)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": service}]},
                "scopeSpans": [{"spans": [one]}],
            }
        ]
    }


def nested(depth: int, kind: str) -> bytes:
    """JSON nested ``depth`` levels inside an OTLP body (arrays, objects or kvlists)."""
    if kind == "array":
        inner = "[" * depth + "]" * depth
    elif kind == "object":
        inner = '{"a":' * depth + "1" + "}" * depth
    else:
        inner = '{"kvlistValue":{"values":[{"key":"k","value":' * depth + "{}" + "}]}}" * depth
    attr = '{"key":"gen_ai.x","value":' + inner + "}"
    return (
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[' + attr + "]}]}]}]}"
    ).encode()


def nested_protobuf(depth: int) -> bytes:
    """Field 1 (length-delimited) nested ``depth`` times: deeper than protobuf allows."""
    out = b""
    for _ in range(depth):
        out = b"\x0a" + _varint(len(out)) + out
    return out


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


VALID = request("fuzz-valid", [span(1, chat_attrs(1))]).SerializeToString()
BODIES = st.one_of(
    st.tuples(st.binary(max_size=3000), st.sampled_from([PROTO, JSON_CT])),
    st.tuples(otlp_json_trees().map(lambda t: json.dumps(t).encode()), st.just(JSON_CT)),
    st.tuples(
        st.integers(1, 20_000).flatmap(
            lambda d: st.sampled_from([nested(d, k) for k in ("array", "object", "kvlist")])
        ),
        st.just(JSON_CT),
    ),
    st.tuples(st.integers(50, 5000).map(nested_protobuf), st.just(PROTO)),
    st.tuples(
        st.tuples(st.integers(0, len(VALID) - 1), st.binary(min_size=1, max_size=8)).map(
            lambda cut: VALID[: cut[0]] + cut[1] + VALID[cut[0] + len(cut[1]) :]
        ),
        st.just(PROTO),
    ),
)


def _post(url: str, body: bytes, content_type: str, gzipped: bool) -> httpx.Response:
    headers = {"content-type": content_type}
    if gzipped:
        body, headers["content-encoding"] = gzip.compress(body, compresslevel=1), "gzip"
    return CLIENT.post(url + "/v1/traces", content=body, headers=headers, timeout=30.0)


def _send_valid(url: str, sent: list[str]) -> None:
    n = next(SPAN_IDS)
    answer = _post(
        url, request("fuzz-valid", [span(n, chat_attrs(1))]).SerializeToString(), PROTO, False
    )
    assert answer.status_code == 200, answer.text
    assert ExportTraceServiceResponse.FromString(answer.content) == ExportTraceServiceResponse()
    sent.append(event_id(n))


SENT: list[str] = []


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(body=BODIES, gzipped=st.booleans())
def test_fuzzed_otlp_http_bodies_never_get_a_5xx(
    running: Running, body: tuple[bytes, str], gzipped: bool
) -> None:
    data, content_type = body
    answer = _post(running.url, data, content_type, gzipped)
    assert answer.status_code in (200, 400, 413), (answer.status_code, answer.text[:300])
    if answer.status_code != 200:
        message = answer.json()["message"] if content_type == JSON_CT else answer.content
        assert message, "a refusal says why"
    _send_valid(running.url, SENT)


def test_bombs_and_oversized_bodies_are_413_and_the_receiver_keeps_serving(
    running: Running,
) -> None:
    bomb = gzip.compress(b"\x00" * (64 * LIMIT), compresslevel=9)  # 128 MiB inflated
    assert len(bomb) < LIMIT
    inflated = CLIENT.post(
        running.url + "/v1/traces",
        content=bomb,
        headers={"content-type": JSON_CT, "content-encoding": "gzip"},
    )
    assert inflated.status_code == 413
    assert inflated.json()["message"] == (
        f"body larger than {LIMIT} bytes (collector.max_request_bytes) once decompressed"
    )
    too_big = _post(running.url, b"x" * (LIMIT + 1), JSON_CT, False)
    assert too_big.status_code == 413
    deep = _post(running.url, nested(100_000, "array"), JSON_CT, False)
    assert deep.status_code == 400
    assert deep.json()["message"] == f"body nested deeper than {MAX_JSON_DEPTH} levels"
    health = CLIENT.get(running.url + "/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    _send_valid(running.url, SENT)


def test_payloads_beyond_a_kafka_record_are_refused_with_a_reason_and_kept_truncated(
    running: Running, kafka_bootstrap: str, topics_m: dict[str, str]
) -> None:
    garbage = b"\x07" * (MAX_RECORD_BYTES + 100_000)  # not protobuf, under the body limit
    refused = _post(running.url, garbage, PROTO, False)
    assert refused.status_code == 400
    huge_attr = chat_attrs(1, **{"gen_ai.request.note": "y" * (MAX_RECORD_BYTES + 10)})
    n = next(SPAN_IDS)
    partial = _post(
        running.url, otlp_json(request("fuzz-big", [span(n, huge_attr)])), JSON_CT, True
    )
    assert partial.status_code == 200
    assert partial.json()["partialSuccess"]["rejectedSpans"] == "1"  # int64 as a string
    assert "record limit" in partial.json()["partialSuccess"]["errorMessage"]
    dead = whole_topic(kafka_bootstrap, topics_m["dlq"])
    assert all(len(value) <= MAX_RECORD_BYTES for value, _ in dead)
    kept = [(v, h) for v, h in dead if h.get("payload.truncated") == str(len(garbage)).encode()]
    assert len(kept) == 1
    assert garbage.startswith(kept[0][0])
    assert kept[0][1]["reason"].startswith(b"body is not an OTLP protobuf message")
    _send_valid(running.url, SENT)


def test_every_valid_span_sent_between_fuzzed_bodies_is_on_the_topic(
    running: Running, kafka_bootstrap: str, topics_m: dict[str, str]
) -> None:
    _send_valid(running.url, SENT)
    records = whole_topic(kafka_bootstrap, topics_m["telemetry"])
    on_topic = [json.loads(v)["event_id"] for v, _ in records]
    assert sorted(e for e in on_topic if e in set(SENT)) == sorted(SENT)  # each once


def whole_topic(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    """Every record of ``topic`` up to its current end (value, headers)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    end = sum(
        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    out: list[tuple[bytes, dict[str, bytes]]] = []
    while len(out) < end:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            out.append((msg.value(), dict(msg.headers() or [])))
    consumer.close()
    return out


GRPC_BODIES = st.one_of(
    st.binary(max_size=2000),
    st.integers(50, 3000).map(nested_protobuf),
    st.builds(
        lambda attrs: request("fuzz-grpc", [span(7, attrs)]).SerializeToString(),
        st.dictionaries(
            GENAI_KEYS,
            st.integers(-(2**63), 2**63 - 1)
            | st.floats()
            | st.text(max_size=40)
            | st.sampled_from(["9" * 30, "-1", "1e999"]),
            max_size=6,
        ).map(lambda extra: chat_attrs(7, **extra)),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=GRPC_BODIES)
def test_fuzzed_otlp_grpc_requests_are_ok_or_invalid_argument(
    running: Running, body: bytes
) -> None:
    async def call() -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.collector.grpc_port}") as channel:
            export = channel.unary_unary(f"/{SERVICE_NAME}/Export")
            try:
                await export(body, timeout=30)
            except grpc.aio.AioRpcError as err:
                return err.code()
            return grpc.StatusCode.OK

    code = asyncio.run(call())
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), code
