"""Prometheus metrics of the collector, on a registry of its own (one per collector).

Counters: ``collector_spans_received_total``, ``collector_spans_ignored_total`` (no GenAI
attributes), ``collector_events_accepted_total`` (delivered or spilled, label ``transport``),
``collector_events_rejected_total`` (invalid, sent to the DLQ), ``collector_events_dlq_total``,
``collector_requests_refused_total`` (label ``cause``: rate_limited, backpressure,
buffer_full, invalid), ``collector_events_delivered_total``, ``collector_events_spilled_total``,
``collector_events_replayed_total``, ``collector_rate_limit_fallbacks_total`` (batches the
in-process limiter judged while the shared one in Redis was down). Gauges:
``collector_breaker_state`` (0 closed, 1 open, 2 half-open), ``collector_spill_bytes``,
``collector_spill_events``, ``collector_queue_depth``. OTLP metrics and logs:
:class:`collector.otlp_signals.SignalMetrics` (``signals``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from collector.otlp_signals import SignalMetrics

__all__ = ["CollectorMetrics"]


class CollectorMetrics:
    """The collector's metrics on ``registry`` (a new one by default, so instances never clash).

    Args:
        registry: Where to register; pass a shared one to expose them with other metrics.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.spans_received = Counter(
            "collector_spans_received", "OTLP spans received", ["transport"], registry=r
        )
        self.spans_ignored = Counter(
            "collector_spans_ignored",
            "OTLP spans without GenAI attributes",
            ["transport"],
            registry=r,
        )
        self.events_accepted = Counter(
            "collector_events_accepted",
            "Events accepted (delivered to Kafka or spilled to disk)",
            ["transport"],
            registry=r,
        )
        self.events_rejected = Counter(
            "collector_events_rejected",
            "Invalid events (sent to the DLQ)",
            ["transport"],
            registry=r,
        )
        self.events_dlq = Counter(
            "collector_events_dlq", "Records written to the dead-letter topic", registry=r
        )
        self.rate_limit_fallbacks = Counter(
            "collector_rate_limit_fallbacks",
            "Batches judged by the in-process limiter because the shared one (Redis) was down",
            registry=r,
        )
        self.requests_refused = Counter(
            "collector_requests_refused", "Requests refused", ["cause"], registry=r
        )
        self.delivered = Counter(
            "collector_events_delivered", "Records confirmed by Kafka", registry=r
        )
        self.spilled = Counter(
            "collector_events_spilled", "Records written to the spill buffer", registry=r
        )
        self.replayed = Counter(
            "collector_events_replayed", "Spilled records delivered to Kafka", registry=r
        )
        self.breaker_state = Gauge(
            "collector_breaker_state", "Kafka breaker: 0 closed, 1 open, 2 half-open", registry=r
        )
        self.spill_bytes = Gauge("collector_spill_bytes", "Bytes in the spill buffer", registry=r)
        self.spill_events = Gauge(
            "collector_spill_events", "Records in the spill buffer", registry=r
        )
        self.queue_depth = Gauge(
            "collector_queue_depth", "Events admitted and not yet delivered or spilled", registry=r
        )

        self.signals = SignalMetrics(r)

    def exposition(self) -> bytes:
        """The Prometheus text format of every collector metric."""
        return generate_latest(self.registry)
