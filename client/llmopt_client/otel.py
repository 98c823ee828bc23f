"""Telemetry as OpenTelemetry GenAI spans through the stock OpenTelemetry SDK.

Each call becomes one ``chat {model}`` client span with the ``gen_ai.*`` attributes of the
semantic conventions and the ``llmopt.*`` ones the collector maps (task, variant, config
version, request id, cost, time to first token, shadow score); feedback becomes a
``gen_ai.evaluation.result`` span event. Configure the tracer provider as usual (an OTLP
exporter to the collector on 4317/4318); this module only needs ``opentelemetry-api``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["OtelReporter", "span_attributes"]

_NS = 1_000_000_000

_ATTRS = (
    ("operation", "gen_ai.operation.name"),
    ("provider", "gen_ai.provider.name"),
    ("model", "gen_ai.request.model"),
    ("input_tokens", "gen_ai.usage.input_tokens"),
    ("output_tokens", "gen_ai.usage.output_tokens"),
    ("cache_read_tokens", "gen_ai.usage.cache_read.input_tokens"),
    ("error_type", "error.type"),
    ("task", "llmopt.task"),
    ("variant", "llmopt.variant"),
    ("config_version", "llmopt.config_version"),
    ("request_id", "llmopt.request_id"),
    ("cost_usd", "llmopt.cost_usd"),
    ("ttft_ms", "llmopt.ttft_ms"),
    ("quality", "llmopt.quality"),
    ("prompt_hash", "llmopt.prompt_hash"),
    ("user_id", "user.id"),
    ("shadow_model", "llmopt.shadow_model"),
    ("shadow_quality", "llmopt.shadow_quality"),
)


def span_attributes(event: dict[str, Any]) -> dict[str, Any]:
    """The span attributes of an ``llm_call`` event (the names the collector maps)."""
    attrs = {key: event[name] for name, key in _ATTRS if event.get(name) is not None}
    if event.get("finish_reason"):
        attrs["gen_ai.response.finish_reasons"] = (event["finish_reason"],)
    return attrs


def _unix_ns(timestamp: int | str) -> int:
    """Epoch milliseconds (what the SDK's events carry) or an RFC 3339 string, in ns."""
    if isinstance(timestamp, str):
        return int(datetime.fromisoformat(timestamp).timestamp() * _NS)
    return int(timestamp) * 1_000_000


class OtelReporter:
    """Emits each event as a span of ``tracer_provider`` (default: the global one).

    Args:
        tracer_provider: Where spans go; its resource's ``service.name`` is the app.
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._provider = tracer_provider
        self._tracer = trace.get_tracer("llmopt_client", tracer_provider=tracer_provider)

    def emit(self, event: dict[str, Any]) -> None:
        """Record ``event`` as a span (ended at once, with the call's own start and end)."""
        end = _unix_ns(event["timestamp"])
        if event.get("kind") == "feedback":
            self._feedback(event, end)
            return
        start = end - int(float(event.get("latency_ms", 0.0)) * 1_000_000)
        span = self._tracer.start_span(
            f"{event.get('operation', 'chat')} {event['model']}",
            kind=SpanKind.CLIENT,
            attributes=span_attributes(event),
            start_time=start,
        )
        if event.get("status") == "error":
            span.set_status(Status(StatusCode.ERROR, event.get("error_type") or "error"))
        span.end(end_time=end)

    def _feedback(self, event: dict[str, Any], at: int) -> None:
        attrs: dict[str, Any] = {"gen_ai.operation.name": "evaluate"}
        if event.get("task"):
            attrs["llmopt.task"] = event["task"]
        span = self._tracer.start_span("feedback", attributes=attrs, start_time=at)
        ev: dict[str, Any] = {
            "llmopt.request_id": event["request_id"],
            "gen_ai.evaluation.score.value": event["quality"],
        }
        if event.get("shadow_model") is not None:
            ev["llmopt.shadow_model"] = event["shadow_model"]
            ev["llmopt.shadow_quality"] = event["shadow_quality"]
        span.add_event("gen_ai.evaluation.result", ev, timestamp=at)
        span.end(end_time=at)

    def flush(self, timeout: float) -> bool:
        """Force-flush the SDK tracer provider's processors (True for other providers)."""
        provider = self._provider or trace.get_tracer_provider()
        force = getattr(provider, "force_flush", None)
        return bool(force(int(timeout * 1000))) if callable(force) else True

    def close(self) -> None:
        """Flush (the provider itself belongs to the application)."""
        self.flush(10.0)
