"""Telemetry as OpenTelemetry GenAI spans, exported over OTLP/HTTP (JSON) to the collector.

Each call becomes one span of its app's resource (``service.name``) with the ``gen_ai.*`` and
``llmopt.*`` attributes the collector maps back to the event (docs/telemetry.md); a
feedback event becomes a model-less GenAI span carrying one ``gen_ai.evaluation.result`` span
event with the call's ``llmopt.request_id``. Span and trace ids are derived from the event id,
so a retried export is deduplicated downstream.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

__all__ = ["OtlpSink", "export_request"]

_STRINGS = (
    ("model", "gen_ai.request.model"),
    ("provider", "gen_ai.provider.name"),
    ("task", "llmopt.task"),
    ("variant", "llmopt.variant"),
    ("request_id", "llmopt.request_id"),
    ("prompt_hash", "llmopt.prompt_hash"),
    ("error_type", "error.type"),
)
_INTS = (
    ("input_tokens", "gen_ai.usage.input_tokens"),
    ("output_tokens", "gen_ai.usage.output_tokens"),
    ("cache_read_tokens", "gen_ai.usage.cache_read.input_tokens"),
    ("prompt_tokens_fixed", "llmopt.prompt_tokens_fixed"),
    ("config_version", "llmopt.config_version"),
)
_FLOATS = (
    ("cost_usd", "llmopt.cost_usd"),
    ("quality", "llmopt.quality"),
    ("ttft_ms", "llmopt.ttft_ms"),
)
_ERROR = 2  # STATUS_CODE_ERROR


def _ids(event_id: str) -> tuple[str, str]:
    digest = hashlib.blake2b(event_id.encode(), digest_size=24).hexdigest()
    return digest[:32], digest[32:48]


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _call_span(e: dict[str, Any]) -> dict[str, Any]:
    trace_id, span_id = _ids(e["event_id"])
    end_ns = int(e["timestamp"]) * 1_000_000
    attrs = [_attr("gen_ai.operation.name", e.get("operation", "chat"))]
    attrs += [_attr(k, str(e[f])) for f, k in _STRINGS if e.get(f) is not None]
    attrs += [_attr(k, int(e[f])) for f, k in _INTS if e.get(f) is not None]
    attrs += [_attr(k, float(e[f])) for f, k in _FLOATS if e.get(f) is not None]
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": f"chat {e['model']}",
        "kind": 3,  # CLIENT
        "startTimeUnixNano": str(end_ns - round(float(e["latency_ms"]) * 1_000_000)),
        "endTimeUnixNano": str(end_ns),
        "attributes": attrs,
    }
    if e.get("status") == "error":
        span["status"] = {"code": _ERROR}
    return span


def _feedback_span(e: dict[str, Any]) -> dict[str, Any]:
    trace_id, span_id = _ids(e["event_id"])
    at_ns = str(int(e["timestamp"]) * 1_000_000)
    attrs = [_attr("gen_ai.operation.name", "evaluate")]
    if e.get("task") is not None:
        attrs.append(_attr("llmopt.task", e["task"]))
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "evaluate",
        "kind": 1,  # INTERNAL
        "startTimeUnixNano": at_ns,
        "endTimeUnixNano": at_ns,
        "attributes": attrs,
        "events": [
            {
                "name": "gen_ai.evaluation.result",
                "timeUnixNano": at_ns,
                "attributes": [
                    _attr("gen_ai.evaluation.score.value", float(e["quality"])),
                    _attr("llmopt.request_id", e["request_id"]),
                ],
            }
        ],
    }


def export_request(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An OTLP JSON ``ExportTraceServiceRequest`` of ``events`` (one resource per app)."""
    by_app: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        span = _feedback_span(e) if e.get("kind") == "feedback" else _call_span(e)
        by_app.setdefault(e["app"], []).append(span)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", app)]},
                "scopeSpans": [{"scope": {"name": "llmopt-simulator"}, "spans": spans}],
            }
            for app, spans in by_app.items()
        ]
    }


class OtlpSink:
    """``POST {url}/v1/traces`` (OTLP JSON) in batches; a 429 is retried after Retry-After."""

    def __init__(
        self,
        url: str,
        *,
        batch: int = 2000,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = url.rstrip("/")
        self._path = base if base.endswith("/v1/traces") else base + "/v1/traces"
        self._client = client or httpx.Client(timeout=30.0)
        self._batch = batch
        self._sleep = sleep
        self.delivered = 0
        self.rejected = 0  # spans the collector rejected (partial success)

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Export ``events`` in batches."""
        for i in range(0, len(events), self._batch):
            chunk = events[i : i + self._batch]
            for _attempt in range(10):
                response = self._client.post(self._path, json=export_request(chunk))
                if response.status_code != httpx.codes.TOO_MANY_REQUESTS:
                    break
                self._sleep(float(response.headers.get("retry-after", "1")))
            response.raise_for_status()
            partial = (response.json() if response.content else {}).get("partialSuccess") or {}
            self.rejected += int(partial.get("rejectedSpans", 0))
            self.delivered += len(chunk)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
