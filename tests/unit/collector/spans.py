"""Builders of OTLP export requests for the collector's tests."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

T0_NS = 1_795_946_400_000_000_000  # 2026-11-29T10:00:00Z


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def span(
    n: int,
    attrs: dict[str, Any],
    *,
    start_ns: int = T0_NS,
    duration_ms: int = 812,
    error: bool = False,
    events: list[tuple[str, int, dict[str, Any]]] = (),  # type: ignore[assignment]
) -> Span:
    return Span(
        trace_id=bytes.fromhex(f"{n:032x}"),
        span_id=bytes.fromhex(f"{n + 0xABC000:016x}"),
        name="chat",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + duration_ms * 1_000_000,
        attributes=kvs(attrs),
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_OK),
        events=[
            Span.Event(name=name, time_unix_nano=t, attributes=kvs(a)) for name, t, a in events
        ],
    )


def request(service: str, spans: list[Span]) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=kvs({"service.name": service})),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )


def chat_attrs(i: int, **extra: Any) -> dict[str, Any]:
    """A plain chat call: model, provider, tokens, task."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 100 + i,
        "gen_ai.usage.output_tokens": 10 + i,
        "llmopt.task": "classify",
        **extra,
    }


def event_id(n: int) -> str:
    return f"{n:032x}{n + 0xABC000:016x}"
