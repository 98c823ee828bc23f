"""OpenTelemetry GenAI spans → telemetry events (CONTRACT.md §2).

A span is a GenAI call when one of its attributes starts with ``gen_ai.``; other spans are
ignored (and counted). A GenAI span with a model becomes one ``llm_call`` event; each of its
``gen_ai.evaluation.result`` span events becomes one ``feedback`` event for that call. Events
are plain dicts, validated afterwards by :func:`core.events.decode_event` like every other
ingest path, so a span that maps to an invalid event is rejected with the same reasons.

Ids are deterministic: a retried export produces the same ``event_id`` values, which the
processor deduplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.otlp_values import attributes_of

__all__ = ["EVALUATION_EVENT", "MappedSpans", "call_id", "map_request", "map_span"]

EVALUATION_EVENT = "gen_ai.evaluation.result"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEFAULT_APP = "unknown_service"

# Attribute name(s) → event field; the first name present wins (current name before deprecated).
_STRINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("operation", ("gen_ai.operation.name",)),
    ("provider", ("gen_ai.provider.name", "gen_ai.system")),
    ("task", ("llmopt.task", "gen_ai.prompt.name")),
    ("variant", ("llmopt.variant",)),
    ("error_type", ("error.type",)),
    ("prompt_hash", ("llmopt.prompt_hash",)),
    ("user_id", ("user.id", "enduser.id")),
    ("shadow_model", ("llmopt.shadow_model",)),
)
_INTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("input_tokens", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
    ("output_tokens", ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")),
    ("cache_read_tokens", ("gen_ai.usage.cache_read.input_tokens",)),
    ("prompt_tokens_fixed", ("llmopt.prompt_tokens_fixed",)),
    ("config_version", ("llmopt.config_version",)),
)
_FLOATS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cost_usd", ("llmopt.cost_usd", "gen_ai.usage.cost")),  # the second: openlit's (USD)
    ("quality", ("llmopt.quality",)),
    ("ttft_ms", ("llmopt.ttft_ms",)),
    ("shadow_quality", ("llmopt.shadow_quality",)),
)
# Copied into the event's ``attributes`` (small scalars only, never prompt or completion text).
_KEPT = ("gen_ai.response.model", "gen_ai.response.id", "gen_ai.conversation.id")
_KEPT_PREFIX = "gen_ai.request."
_MODEL = ("gen_ai.request.model", "gen_ai.response.model")

# The tables above by attribute name, so that a span's attributes are read in one pass:
# name -> ((event field, rank of the name among the field's names, kind), ...).
_STR, _INT, _FLOAT = 0, 1, 2
_BY_NAME: dict[str, tuple[tuple[str, int, int], ...]] = {}
for _kind, _table in enumerate((_STRINGS, _INTS, _FLOATS)):
    for _field, _names in _table:
        for _rank, _name in enumerate(_names):
            _BY_NAME[_name] = (*_BY_NAME.get(_name, ()), (_field, _rank, _kind))
# Event fields in the order the tables give them (the order of the event's JSON keys).
_ORDER = tuple((f, kind) for kind, table in enumerate((_STRINGS, _INTS, _FLOATS)) for f, _ in table)


@dataclass(slots=True)
class MappedSpans:
    """What one export request became.

    Attributes:
        events: Telemetry events (dicts in the contract's shape), in span order.
        event_spans: For each event, the index (in request order) of the span it came from.
        spans: Spans in the request.
        ignored: Spans without GenAI attributes, or GenAI spans that are not model calls
            (tools, agents) and carry no evaluation.
        services: The ``service.name`` of each resource, in request order.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    event_spans: list[int] = field(default_factory=list)
    spans: int = 0
    ignored: int = 0
    services: list[str] = field(default_factory=list)


# (Unix second → its RFC 3339 text up to the seconds) for the last seconds seen: spans of one
# export are close in time, and formatting a datetime costs ~20x a dict lookup.
_SECONDS: dict[int, str] = {}


def _rfc3339(unix_nano: int) -> str:
    """``unix_nano`` as RFC 3339 UTC to the microsecond (no fraction when it is 0), ``Z``."""
    seconds, micros = divmod(unix_nano // 1000, 1_000_000)
    head = _SECONDS.get(seconds)
    if head is None:
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        head = _SECONDS[seconds] = (_EPOCH + timedelta(seconds=seconds)).isoformat()[:-6]
    return f"{head}.{micros:06d}Z" if micros else head + "Z"


def _first(attrs: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None and value != "":
            return value
    return None


_INT64 = 2**63


def _as_int(value: Any) -> Any:
    """Integral floats and digit strings as ints; anything else unchanged (validation judges).

    Only values a 64-bit integer holds are converted: a larger one stays as it came (a string,
    a float) so that validation rejects it with a reason instead of the encoder failing.
    """
    if isinstance(value, float) and value.is_integer() and -_INT64 <= value < _INT64:
        return int(value)
    if isinstance(value, str) and len(value) <= 20:
        try:
            number = int(value)
        except ValueError:
            return value
        return number if -_INT64 <= number < _INT64 else value
    return value


def _as_float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def call_id(span: Span, attrs: Mapping[str, Any]) -> str:
    """The id of the call a span records: ``llmopt.request_id``, else trace id + span id."""
    explicit = attrs.get("llmopt.request_id")
    if isinstance(explicit, str) and explicit:
        return explicit
    return span.trace_id.hex() + span.span_id.hex()


def _chosen(attrs: Mapping[str, Any]) -> dict[str, tuple[int, Any]]:
    """For each event field of the tables, the value of its first name present (with its rank).

    The same choice as :func:`_first` over each field's names (a value that is ``None`` or
    ``""`` counts as absent), in one pass over the span's attributes.
    """
    chosen: dict[str, tuple[int, Any]] = {}
    for name, value in attrs.items():
        specs = _BY_NAME.get(name)
        if specs is None or value is None or value == "":
            continue
        for field_name, rank, _ in specs:
            have = chosen.get(field_name)
            if have is None or rank < have[0]:
                chosen[field_name] = (rank, value)
    return chosen


def _llm_call(
    span: Span, attrs: Mapping[str, Any], app: str, now_ns: int, model: Any
) -> dict[str, Any]:
    # Each read of a protobuf field builds a Python object: read every one once.
    trace_hex, span_hex = span.trace_id.hex(), span.span_id.hex()
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    event: dict[str, Any] = {
        "kind": "llm_call",
        "event_id": trace_hex + span_hex,
        "timestamp": _rfc3339(end or start or now_ns),
        "app": app,
        "model": model,
    }
    if start and end >= start:
        event["latency_ms"] = (end - start) / 1e6
    chosen = _chosen(attrs)
    if chosen:
        for name, kind in _ORDER:
            found = chosen.get(name)
            if found is not None:
                value = found[1]
                event[name] = (
                    value if kind == _STR else _as_int(value) if kind == _INT else _as_float(value)
                )
    ttft_s = attrs.get("gen_ai.response.time_to_first_chunk")
    if ttft_s is None:  # openlit's name (seconds too)
        ttft_s = attrs.get("gen_ai.server.time_to_first_token")
    if "ttft_ms" not in event and isinstance(ttft_s, int | float):
        event["ttft_ms"] = ttft_s * 1000.0
    reasons = attrs.get("gen_ai.response.finish_reasons")
    if isinstance(reasons, list) and reasons:
        event["finish_reason"] = str(reasons[0])
    elif isinstance(reasons, str) and reasons:
        event["finish_reason"] = reasons
    failed = span.status.code == Status.STATUS_CODE_ERROR or "error_type" in event
    event["status"] = "error" if failed else "ok"
    if failed:  # a failed call is billed nothing when it reports no usage
        event.setdefault("input_tokens", 0)
        event.setdefault("output_tokens", 0)
    explicit = attrs.get("llmopt.request_id")
    event["request_id"] = (
        explicit if isinstance(explicit, str) and explicit else trace_hex + span_hex
    )
    kept = {
        k: v
        for k, v in attrs.items()
        if (k in _KEPT or k.startswith(_KEPT_PREFIX)) and k != "gen_ai.request.model"
    }
    kept["otel.trace_id"] = trace_hex
    kept["otel.span_id"] = span_hex
    event["attributes"] = kept
    return event


def _feedback(
    span: Span, attrs: Mapping[str, Any], app: str, index: int, now_ns: int
) -> dict[str, Any]:
    ev = span.events[index]
    ev_attrs = attributes_of(ev.attributes)
    event: dict[str, Any] = {
        "kind": "feedback",
        "event_id": f"{span.trace_id.hex()}{span.span_id.hex()}-eval-{index}",
        "timestamp": _rfc3339(ev.time_unix_nano or span.end_time_unix_nano or now_ns),
        "app": app,
        "request_id": ev_attrs.get("llmopt.request_id") or call_id(span, attrs),
    }
    score = _as_float(ev_attrs.get("gen_ai.evaluation.score.value"))
    if score is not None:
        event["quality"] = score
    shadow = ev_attrs.get("llmopt.shadow_model")
    if shadow is not None:  # a paired score of the shadow candidate (llmopt_client.otel)
        event["shadow_model"] = shadow
        event["shadow_quality"] = _as_float(ev_attrs.get("llmopt.shadow_quality"))
    task = _first(attrs, ("llmopt.task", "gen_ai.prompt.name"))
    if task is not None:
        event["task"] = task
    return event


def map_span(span: Span, app: str, now_ns: int) -> list[dict[str, Any]] | None:
    """The events of one span, or ``None`` when the span is not a GenAI call.

    Args:
        span: The OTLP span.
        app: Its resource's ``service.name``.
        now_ns: Receipt time (Unix ns), used only when the span carries no times.
    """
    attrs = attributes_of(span.attributes)
    for key in attrs:
        if key.startswith("gen_ai."):
            break
    else:
        return None
    events: list[dict[str, Any]] = []
    model = _first(attrs, _MODEL)
    if model is not None:
        events.append(_llm_call(span, attrs, app, now_ns, model))
    if len(span.events):
        events.extend(
            _feedback(span, attrs, app, i, now_ns)
            for i, ev in enumerate(span.events)
            if ev.name == EVALUATION_EVENT
        )
    return events or None


def map_request(request: ExportTraceServiceRequest, now: datetime) -> MappedSpans:
    """Map every span of an export request (see the module docstring for the rules)."""
    now_ns = (now - _EPOCH) // timedelta(microseconds=1) * 1000
    out = MappedSpans()
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        app = resource.get("service.name")
        app = app if isinstance(app, str) and app else _DEFAULT_APP
        out.services.append(app)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                index = out.spans
                out.spans += 1
                events = map_span(span, app, now_ns)
                if events is None:
                    out.ignored += 1
                    continue
                out.events.extend(events)
                out.event_spans.extend([index] * len(events))
    return out
