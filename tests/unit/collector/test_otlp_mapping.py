"""GenAI spans → telemetry events: every mapped attribute, deprecated names, feedback, ignores."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest
from google.protobuf import json_format

from collector.otlp_decode import (
    JSON,
    MAX_JSON_DEPTH,
    PROTOBUF,
    BodyTooLargeError,
    decode_body,
    decompress,
    media_type,
)
from collector.otlp_mapping import map_request
from core.errors import ValidationError
from core.events import Feedback, LlmCall, decode_event
from tests.unit.collector.spans import T0_NS, chat_attrs, event_id, request, span

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_every_attribute_maps_to_its_field() -> None:
    attrs = {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.system": "ignored-because-provider-name-wins",
        "gen_ai.request.model": "claude-sonnet-4",
        "gen_ai.response.model": "claude-sonnet-4-20250514",
        "gen_ai.response.id": "msg_01",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 256,
        "gen_ai.usage.input_tokens": 950,
        "gen_ai.usage.output_tokens": 42,
        "gen_ai.usage.cache_read.input_tokens": 512,
        "gen_ai.response.finish_reasons": ["stop", "length"],
        "gen_ai.input.messages": "[{...prompt text never copied...}]",
        "llmopt.task": "summarise",
        "llmopt.variant": "canary",
        "llmopt.config_version": 7,
        "llmopt.request_id": "req-9",
        "llmopt.prompt_hash": "ph1",
        "llmopt.prompt_tokens_fixed": 300,
        "llmopt.cost_usd": 0.0123,
        "llmopt.ttft_ms": 120.5,
        "user.id": "u-1",
        "http.method": "POST",
    }
    mapped = map_request(request("support", [span(1, attrs)]), NOW)
    assert (mapped.spans, mapped.ignored, mapped.services) == (1, 0, ["support"])
    assert mapped.events == [
        {
            "kind": "llm_call",
            "event_id": event_id(1),
            "timestamp": "2026-11-29T10:00:00.812000Z",
            "app": "support",
            "model": "claude-sonnet-4",
            "latency_ms": 812.0,
            "operation": "text_completion",
            "provider": "anthropic",
            "task": "summarise",
            "variant": "canary",
            "prompt_hash": "ph1",
            "user_id": "u-1",
            "input_tokens": 950,
            "output_tokens": 42,
            "cache_read_tokens": 512,
            "prompt_tokens_fixed": 300,
            "config_version": 7,
            "cost_usd": 0.0123,
            "ttft_ms": 120.5,
            "finish_reason": "stop",
            "status": "ok",
            "request_id": "req-9",
            "attributes": {
                "gen_ai.response.model": "claude-sonnet-4-20250514",
                "gen_ai.response.id": "msg_01",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 256,
                "otel.trace_id": f"{1:032x}",
                "otel.span_id": f"{1 + 0xABC000:016x}",
            },
        }
    ]
    assert isinstance(decode_event(json.dumps(mapped.events[0]).encode()), LlmCall)


def test_deprecated_names_and_defaults() -> None:
    attrs = {
        "gen_ai.system": "openai",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.prompt_tokens": 11,
        "gen_ai.usage.completion_tokens": 3,
        "gen_ai.prompt.name": "triage-v2",
        "gen_ai.response.finish_reasons": "stop",
        "gen_ai.response.time_to_first_chunk": 0.25,
        "enduser.id": "u-2",
    }
    (event,) = map_request(request("shop", [span(2, attrs, duration_ms=40)]), NOW).events
    assert event == {
        "kind": "llm_call",
        "event_id": event_id(2),
        "timestamp": "2026-11-29T10:00:00.040000Z",
        "app": "shop",
        "model": "gpt-4o-2024-08-06",
        "latency_ms": 40.0,
        "provider": "openai",
        "task": "triage-v2",
        "user_id": "u-2",
        "input_tokens": 11,
        "output_tokens": 3,
        "ttft_ms": 250.0,
        "finish_reason": "stop",
        "status": "ok",
        "request_id": event_id(2),
        "attributes": {
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "otel.trace_id": f"{2:032x}",
            "otel.span_id": f"{2 + 0xABC000:016x}",
        },
    }
    decoded = decode_event(json.dumps(event).encode())
    assert isinstance(decoded, LlmCall)
    assert (decoded.task, decoded.operation, decoded.variant) == ("triage-v2", "chat", "baseline")


def test_failed_span_is_an_error_call_without_usage() -> None:
    attrs = {"gen_ai.request.model": "gpt-4o", "error.type": "rate_limited"}
    (event,) = map_request(request("a", [span(3, attrs, error=True)]), NOW).events
    assert (event["status"], event["error_type"]) == ("error", "rate_limited")
    assert (event["input_tokens"], event["output_tokens"]) == (0, 0)
    status_only = map_request(
        request("a", [span(4, {"gen_ai.request.model": "m"}, error=True)]), NOW
    )
    assert status_only.events[0]["status"] == "error"
    assert "error_type" not in status_only.events[0]


def test_ok_span_without_usage_is_left_to_validation() -> None:
    (event,) = map_request(request("a", [span(5, {"gen_ai.request.model": "m"})]), NOW).events
    rejection = decode_event(json.dumps(event).encode())
    assert rejection.reason == (  # type: ignore[union-attr]
        "invalid event: llm_call requires `$.input_tokens`, `$.output_tokens`"
    )


def test_spans_without_genai_attributes_and_non_model_spans_are_ignored() -> None:
    spans = [
        span(6, {"http.method": "GET"}),
        span(7, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
        span(8, chat_attrs(8)),
    ]
    mapped = map_request(request("a", spans), NOW)
    assert (mapped.spans, mapped.ignored) == (3, 2)
    assert [e["event_id"] for e in mapped.events] == [event_id(8)]
    assert mapped.event_spans == [2]


def test_evaluation_events_become_feedback_for_the_call() -> None:
    evaluations = [
        ("gen_ai.evaluation.result", T0_NS + 5_000_000_000, {"gen_ai.evaluation.score.value": 0.8}),
        ("some.other.event", T0_NS, {}),
        ("gen_ai.evaluation.result", 0, {"gen_ai.evaluation.score.label": "bad"}),
    ]
    mapped = map_request(request("a", [span(9, chat_attrs(9), events=evaluations)]), NOW)
    call, good, no_score = mapped.events
    assert call["request_id"] == event_id(9)
    assert good == {
        "kind": "feedback",
        "event_id": event_id(9) + "-eval-0",
        "timestamp": "2026-11-29T10:00:05Z",
        "app": "a",
        "request_id": event_id(9),
        "quality": 0.8,
        "task": "classify",
    }
    assert isinstance(decode_event(json.dumps(good).encode()), Feedback)
    assert no_score["timestamp"] == "2026-11-29T10:00:00.812000Z"  # event without time: span end
    assert decode_event(json.dumps(no_score).encode()).reason == (  # type: ignore[union-attr]
        "invalid event: feedback requires `$.quality`"
    )
    assert mapped.event_spans == [0, 0, 0]


def test_missing_service_name_and_times() -> None:
    req = request("x", [span(10, chat_attrs(10), start_ns=0, duration_ms=0)])
    req.resource_spans[0].resource.Clear()
    (event,) = map_request(req, NOW).events
    assert event["app"] == "unknown_service"
    assert event["timestamp"] == "2026-11-29T12:00:00Z"
    assert "latency_ms" not in event


def test_json_encoding_decodes_like_protobuf() -> None:
    req = request("shop", [span(11, chat_attrs(11, **{"llmopt.config_version": 3}))])
    tree = json_format.MessageToDict(req)
    # OTLP JSON: ids as hex (protobuf's JSON mapping would say base64), int64 as strings.
    s = tree["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    s["traceId"], s["spanId"] = f"{11:032x}", f"{11 + 0xABC000:016x}"
    assert s["startTimeUnixNano"] == str(T0_NS)
    from_json = decode_body(json.dumps(tree).encode(), JSON)
    assert from_json == req
    assert decode_body(req.SerializeToString(), PROTOBUF) == req


def test_snake_case_json_and_numbers_for_int64() -> None:
    body = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": "0af7651916cd43dd8448eb211c80319c",
                                "span_id": "b7ad6b7169203331",
                                "start_time_unix_nano": 1,
                                "end_time_unix_nano": 2,
                            }
                        ]
                    }
                ]
            }
        ]
    }
    req = decode_body(json.dumps(body).encode(), JSON)
    got = req.resource_spans[0].scope_spans[0].spans[0]
    assert got.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert got.end_time_unix_nano == 2


@pytest.mark.parametrize(
    ("body", "kind", "reason"),
    [
        (b"not json", JSON, "body is not JSON"),
        (b"[1, 2]", JSON, "body is not an OTLP JSON object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', JSON, "traceId"),
        (b'{"resourceSpans": 5}', JSON, "body is not OTLP JSON"),
        (b"\xff\xff\xff", PROTOBUF, "body is not an OTLP protobuf message"),
    ],
)
def test_malformed_bodies_are_validation_errors(body: bytes, kind: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        decode_body(body, kind)


def test_gzip_and_limits() -> None:
    data = b"x" * 5000
    assert decompress(gzip.compress(data), "gzip", 10_000) == data
    assert decompress(data, None, 10_000) == data
    with pytest.raises(ValidationError, match="larger than 4000 bytes"):
        decompress(gzip.compress(data), "gzip", 4000)
    with pytest.raises(ValidationError, match="not valid gzip"):
        decompress(b"\x1f\x8b garbage", "gzip", 10_000)
    with pytest.raises(ValidationError, match="not valid gzip: truncated"):
        decompress(gzip.compress(data)[:20], "gzip", 10_000)
    with pytest.raises(ValidationError, match="unsupported Content-Encoding 'br'"):
        decompress(data, "br", 10_000)
    assert media_type("application/json; charset=utf-8") == JSON
    assert media_type(None) == PROTOBUF


def test_nesting_and_inflated_size_are_bounded() -> None:
    deep = b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ValidationError, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        decode_body(deep, JSON)
    nested_pb = b""
    for _ in range(500):  # field 1, length-delimited, 500 deep: beyond protobuf's 100
        size = len(nested_pb)
        length = bytes([size]) if size < 128 else bytes([size & 0x7F | 0x80, size >> 7])
        nested_pb = b"\x0a" + length + nested_pb
    with pytest.raises(ValidationError, match="not an OTLP protobuf message"):
        decode_body(nested_pb, PROTOBUF)
    with pytest.raises(BodyTooLargeError, match="once decompressed"):
        decompress(gzip.compress(b"\0" * 10_000_000), "gzip", 4000)


def test_integers_beyond_64_bits_are_left_for_validation_to_reject() -> None:
    attrs = chat_attrs(
        1, **{"gen_ai.usage.input_tokens": str(2**64), "llmopt.config_version": 1e30}
    )
    (event,) = map_request(request("big", [span(1, attrs)]), NOW).events
    assert event["input_tokens"] == str(2**64)
    assert event["config_version"] == 1e30
