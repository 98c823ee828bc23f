"""OTLP metrics and logs: accepted, counted, GenAI aggregates kept; nothing reaches Kafka.

Accepting them keeps instrumented apps from logging export errors. GenAI instrumentations
(opentelemetry-instrumentation-openai-v2, openlit, OpenLLMetry) export metrics and log events
next to their spans. The spans carry every call; metrics are aggregates
and log events carry prompt and completion text, so neither can become a telemetry event. What
is worth keeping is the aggregate of the GenAI metrics (:data:`GENAI_METRICS`): for each
(metric, model, token type) the collector adds the data points' sums and counts to
``collector_genai_metric_sum_total`` / ``collector_genai_metric_count_total`` (histograms and
sums; cumulative streams are turned into deltas per stream, so re-exported totals are not
counted twice). Every data point and log record is counted in
``collector_otlp_metric_points_total`` / ``collector_otlp_log_records_total`` with
``kind="genai"`` or ``"other"``; the others are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    Metric,
)
from prometheus_client import CollectorRegistry, Counter

from collector.otlp_values import attributes_of

__all__ = ["GENAI_METRICS", "SignalCounts", "SignalMetrics"]

#: GenAI semantic-convention metrics kept as sums and counts (seconds or tokens).
GENAI_METRICS = frozenset(
    {
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.operation.time_per_output_chunk",
        "gen_ai.client.token.usage",
        "gen_ai.server.request.duration",
        "gen_ai.server.time_to_first_token",
        "gen_ai.server.time_per_output_token",
    }
)
_MAX_STREAMS = 10_000  # cumulative streams remembered (oldest forgotten beyond)
_MAX_LABELS = 1_000  # distinct (metric, model, token type); beyond, the model is "other"


@dataclass(slots=True)
class SignalCounts:
    """What one export request held."""

    genai: int = 0
    other: int = 0


class SignalMetrics:
    """Counts OTLP metric points and log records and keeps the GenAI aggregates.

    Args:
        registry: The collector's Prometheus registry.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._last: dict[tuple[Any, ...], tuple[float, int]] = {}
        self._labels: set[tuple[str, str, str]] = set()
        r = registry
        self.points = Counter(
            "collector_otlp_metric_points", "OTLP metric data points", ["kind"], registry=r
        )
        self.log_records = Counter(
            "collector_otlp_log_records", "OTLP log records (dropped)", ["kind"], registry=r
        )
        labels = ["metric", "model", "token_type"]
        self.sums = Counter(
            "collector_genai_metric_sum", "Sum of GenAI metric values", labels, registry=r
        )
        self.counts = Counter(
            "collector_genai_metric_count", "Measurements of GenAI metrics", labels, registry=r
        )

    def metrics(self, request: ExportMetricsServiceRequest) -> SignalCounts:
        """Count ``request``'s data points and add the GenAI ones' sums and counts."""
        out = SignalCounts()
        for resource_metrics in request.resource_metrics:
            service = attributes_of(resource_metrics.resource.attributes).get("service.name")
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    n = self._metric(metric, str(service))
                    if metric.name in GENAI_METRICS:
                        out.genai += n
                    else:
                        out.other += n
        self.points.labels("genai").inc(out.genai)
        self.points.labels("other").inc(out.other)
        return out

    def logs(self, request: ExportLogsServiceRequest) -> SignalCounts:
        """Count ``request``'s log records (GenAI events apart); none is kept."""
        out = SignalCounts()
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    name = record.event_name or str(
                        attributes_of(record.attributes).get("event.name", "")
                    )
                    if name.startswith("gen_ai."):
                        out.genai += 1
                    else:
                        out.other += 1
        self.log_records.labels("genai").inc(out.genai)
        self.log_records.labels("other").inc(out.other)
        return out

    def _metric(self, metric: Metric, service: str) -> int:
        kind = metric.WhichOneof("data")
        if kind is None:
            return 0
        data = getattr(metric, kind)
        points: Iterable[Any] = data.data_points
        if metric.name not in GENAI_METRICS or kind not in ("histogram", "sum"):
            return len(data.data_points)
        cumulative = data.aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
        n = 0
        for point in points:
            n += 1
            attrs = attributes_of(point.attributes)
            total = float(point.sum if kind == "histogram" else _number(point))
            count = int(point.count) if kind == "histogram" else 1
            if cumulative:
                key = (service, metric.name, point.start_time_unix_nano, *sorted(attrs.items()))
                before = self._last.get(key, (0.0, 0))
                if len(self._last) >= _MAX_STREAMS and key not in self._last:
                    self._last.pop(next(iter(self._last)))
                self._last[key] = (total, count)
                if total < before[0] or count < before[1]:  # a reset: the stream restarted
                    before = (0.0, 0)
                total, count = total - before[0], count - before[1]
            labels = self._label(metric.name, attrs)
            if total:
                self.sums.labels(*labels).inc(total)
            if count and kind == "histogram":
                self.counts.labels(*labels).inc(count)
        return n

    def _label(self, name: str, attrs: dict[str, Any]) -> tuple[str, str, str]:
        model = attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model") or ""
        labels = (name, str(model), str(attrs.get("gen_ai.token.type", "")))
        if labels not in self._labels:
            if len(self._labels) >= _MAX_LABELS:
                return (name, "other", labels[2])
            self._labels.add(labels)
        return labels


def _number(point: Any) -> float:
    return float(point.as_double if point.WhichOneof("value") == "as_double" else point.as_int)
