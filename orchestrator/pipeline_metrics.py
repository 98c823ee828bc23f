"""The pipeline's own metrics, sampled from the database, Kafka and the recovery store.

The dataflow runs in other processes (and other machines when scaled out), so its counts are
read where it leaves them, every ``orchestrator.pipeline_metrics_interval``:

- Kafka: the telemetry and dead-letter topics' high watermarks (events in, DLQ);
- the recovery store: each input partition's snapshotted offset, hence the consumer lag
  (``high watermark - recovered offset``; as of the last snapshot);
- the database: windows, late and unmatched events, insights, decisions, verdicts, rollbacks,
  canaries, calls, cost and latency per app and model.

Each scrape reads the last sample (a scrape never waits for the database). See
:data:`PIPELINE_METRICS` for the names.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pickle
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine

from core.settings import Settings
from storage.pipeline_counts import Key, PipelineCounts, read_pipeline_counts

__all__ = [
    "PIPELINE_METRICS",
    "PipelineCollector",
    "PipelineSample",
    "PipelineSampler",
    "read_database",
    "read_kafka",
    "recovered_offsets",
    "recovered_positions",
]

_log = structlog.get_logger(__name__)

#: Every metric family the collector exports (name as exposed, without ``_total``).
PIPELINE_METRICS: Mapping[str, str] = {
    "llmopt_pipeline_events_in": "counter",
    "llmopt_pipeline_dlq_events": "counter",
    "llmopt_pipeline_consumer_lag": "gauge",
    "llmopt_pipeline_topic_resets": "counter",
    "llmopt_pipeline_topic_reread_records": "counter",
    "llmopt_pipeline_stray_events": "counter",
    "llmopt_pipeline_windows": "counter",
    "llmopt_pipeline_calls": "counter",
    "llmopt_pipeline_errors": "counter",
    "llmopt_pipeline_cost_usd": "counter",
    "llmopt_pipeline_latency_seconds": "gauge",
    "llmopt_pipeline_insights": "counter",
    "llmopt_pipeline_decisions": "gauge",
    "llmopt_pipeline_verdicts": "counter",
    "llmopt_pipeline_rollbacks": "counter",
    "llmopt_canary_deployments": "gauge",
    "llmopt_canary_weight": "gauge",
    "llmopt_budget_usd": "gauge",
    "llmopt_pipeline_sample_age_seconds": "gauge",
    "llmopt_pipeline_sample_errors": "counter",
}


@dataclass
class PipelineSample(PipelineCounts):
    """One reading; each mapping is labels → value (the database part: ``PipelineCounts``)."""

    events_in: dict[Key, float] = field(default_factory=dict)  # (partition,)
    dlq: dict[Key, float] = field(default_factory=dict)  # (partition,)
    lag: dict[Key, float] = field(default_factory=dict)  # (partition,)
    resets: dict[Key, float] = field(default_factory=dict)  # (partition,)
    reread: dict[Key, float] = field(default_factory=dict)  # (partition,)


def read_database(engine: Engine, sample: PipelineSample) -> None:
    """Fill ``sample``'s database part (counts and sums; cheap aggregate queries)."""
    counts = read_pipeline_counts(engine)
    for f in dataclasses.fields(PipelineCounts):
        setattr(sample, f.name, getattr(counts, f.name))


def recovered_positions(directory: Path, topic: str) -> dict[int, tuple[int, int, int]]:
    """Each input partition's ``(offset, resets, reread)`` in a Bytewax recovery store.

    The processor's Kafka source snapshots each partition under the state key
    ``"<partition>-<topic>"`` of its input step: a dict with the next offset and the times the
    partition was found recreated and read again (:mod:`flows.partition_position`), or a bare
    offset (earlier versions). A negative offset (never read) counts as 0.
    """
    out: dict[int, tuple[int, int, int]] = {}
    suffix = f"-{topic}"
    for part in sorted(directory.glob("part-*.sqlite3")):
        with contextlib.closing(sqlite3.connect(f"file:{part}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT state_key, ser_change FROM snaps s WHERE snap_epoch = "
                "(SELECT MAX(snap_epoch) FROM snaps t WHERE t.step_id = s.step_id "
                "AND t.state_key = s.state_key) AND state_key LIKE ?",
                (f"%{suffix}",),
            ).fetchall()
        for key, blob in rows:
            index = key[: -len(suffix)]
            if not index.isdigit() or blob is None:
                continue
            state = pickle.loads(blob)  # noqa: S301 - written by our own processor
            if isinstance(state, int):
                out[int(index)] = (max(0, state), 0, 0)
            elif isinstance(state, dict) and isinstance(state.get("offset"), int):
                resets, reread = int(state.get("resets", 0)), int(state.get("reread", 0))
                out[int(index)] = (max(0, state["offset"]), resets, reread)
    return out


def recovered_offsets(directory: Path, topic: str) -> dict[int, int]:
    """The input offsets of the latest snapshot in a Bytewax recovery store, per partition."""
    return {p: offset for p, (offset, _, _) in recovered_positions(directory, topic).items()}


def read_kafka(
    bootstrap: str, topics: Iterable[str], timeout_s: float = 5.0
) -> dict[str, dict[int, int]]:
    """High watermark of each partition of each topic (missing topics are left out)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "llmopt-metrics", "enable.auto.commit": False}
    )
    try:
        out: dict[str, dict[int, int]] = {}
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            out[topic] = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
                for p in sorted(meta.partitions)
            }
        return out
    finally:
        consumer.close()


class PipelineSampler:
    """Samples the pipeline periodically; the collector exposes the last sample.

    Args:
        settings: Resolved settings (Kafka address, topics, recovery directory, budgets).
        engine: The database engine.
        recovery: The processor's recovery directory, or None (no lag then).
        clock: Monotonic seconds, for the sample's age.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        recovery: Path | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._recovery = recovery
        self._clock = clock
        self._lock = threading.Lock()
        self._sample = PipelineSample()
        self._taken_at: float | None = None
        self.errors: dict[str, int] = {"database": 0, "kafka": 0, "recovery": 0}

    def sample_once(self) -> PipelineSample:
        """Read everything now (blocking); a failing source is counted and left empty."""
        sample = PipelineSample()
        kafka = self._settings.kafka
        try:
            read_database(self._engine, sample)
        except Exception as exc:
            self._failed("database", exc)
        marks: dict[str, dict[int, int]] = {}
        try:
            marks = read_kafka(kafka.bootstrap_servers, [kafka.telemetry_topic, kafka.dlq_topic])
        except Exception as exc:
            self._failed("kafka", exc)
        telemetry = marks.get(kafka.telemetry_topic, {})
        sample.events_in = {(str(p),): float(h) for p, h in telemetry.items()}
        sample.dlq = {(str(p),): float(h) for p, h in marks.get(kafka.dlq_topic, {}).items()}
        if self._recovery is not None and self._recovery.is_dir() and telemetry:
            try:
                positions = recovered_positions(self._recovery, kafka.telemetry_topic)
                sample.lag = {
                    (str(p),): float(max(0, high - positions.get(p, (0, 0, 0))[0]))
                    for p, high in telemetry.items()
                }
                sample.resets = {(str(p),): float(r) for p, (_, r, _) in positions.items()}
                sample.reread = {(str(p),): float(n) for p, (_, _, n) in positions.items()}
            except Exception as exc:
                self._failed("recovery", exc)
        with self._lock:
            self._sample = sample
            self._taken_at = self._clock()
        return sample

    def _failed(self, source: str, exc: Exception) -> None:
        self.errors[source] += 1
        _log.warning("pipeline_sample_failed", source=source, error=repr(exc))

    def last(self) -> tuple[PipelineSample, float | None]:
        """The last sample and its age in seconds (None before the first)."""
        with self._lock:
            age = None if self._taken_at is None else self._clock() - self._taken_at
            return self._sample, age

    def total_lag(self) -> int | None:
        """Records behind over all partitions, from the last sample (None when unknown)."""
        sample, _ = self.last()
        return int(sum(sample.lag.values())) if sample.lag else None

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every ``orchestrator.pipeline_metrics_interval`` until ``stop`` is set."""
        interval = self._settings.orchestrator.pipeline_metrics_interval.total_seconds()
        while not stop.is_set():
            await asyncio.to_thread(self.sample_once)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


class PipelineCollector:
    """Prometheus collector over a :class:`PipelineSampler`'s last sample."""

    def __init__(self, sampler: PipelineSampler, settings: Settings) -> None:
        """Expose ``sampler``; budgets come from ``settings.budgets``."""
        self._sampler = sampler
        self._budgets = settings.budgets

    def collect(self) -> Iterable[Metric]:
        """Yield every family of :data:`PIPELINE_METRICS`."""
        s, age = self._sampler.last()
        out: list[Metric] = []

        def family(name: str, doc: str, labels: list[str], values: Mapping[Key, float]) -> None:
            kind = CounterMetricFamily if PIPELINE_METRICS[name] == "counter" else GaugeMetricFamily
            metric = kind(name, doc, labels=labels)
            for key, value in sorted(values.items()):
                metric.add_metric(list(key), value)
            out.append(metric)

        family(
            "llmopt_pipeline_events_in",
            "Telemetry records in Kafka (high watermark)",
            ["partition"],
            s.events_in,
        )
        family(
            "llmopt_pipeline_dlq_events",
            "Records in the dead-letter topic (high watermark)",
            ["partition"],
            s.dlq,
        )
        family(
            "llmopt_pipeline_consumer_lag",
            "Records behind: high watermark minus the recovered input offset",
            ["partition"],
            s.lag,
        )
        family(
            "llmopt_pipeline_topic_resets",
            "Times a partition was found recreated and read again from its start",
            ["partition"],
            s.resets,
        )
        family(
            "llmopt_pipeline_topic_reread_records",
            "Records read again after a reset that the old resume offset would have skipped",
            ["partition"],
            s.reread,
        )
        family(
            "llmopt_pipeline_stray_events",
            "Late events and unmatched feedback, by kind",
            ["kind"],
            s.strays,
        )
        family("llmopt_pipeline_windows", "Closed windows written, by kind", ["kind"], s.windows)
        family(
            "llmopt_pipeline_calls",
            "LLM calls in closed tumbling windows",
            ["app", "model"],
            s.calls,
        )
        family(
            "llmopt_pipeline_errors",
            "Failed LLM calls in closed tumbling windows",
            ["app", "model"],
            s.errors,
        )
        family(
            "llmopt_pipeline_cost_usd",
            "Cost of the calls in closed tumbling windows, USD",
            ["app", "model"],
            s.cost,
        )
        family(
            "llmopt_pipeline_latency_seconds",
            "Latency percentile of the latest tumbling window (worst task), seconds",
            ["app", "model", "percentile"],
            s.latency,
        )
        family(
            "llmopt_pipeline_insights", "Analyzer insights", ["analyzer", "severity"], s.insights
        )
        family(
            "llmopt_pipeline_decisions",
            "Decisions by strategy and current status",
            ["strategy", "status"],
            s.decisions,
        )
        family("llmopt_pipeline_verdicts", "Canary judge verdicts", ["outcome"], s.verdicts)
        family("llmopt_pipeline_rollbacks", "Deployments rolled back", [], {(): s.rollbacks})
        family("llmopt_canary_deployments", "Deployments by status", ["status"], s.deployments)
        family(
            "llmopt_canary_weight",
            "Traffic share of each running canary",
            ["app", "task"],
            s.weights,
        )
        budgets: dict[Key, float] = {
            ("daily",): self._budgets.daily_usd,
            ("monthly",): self._budgets.monthly_usd,
        }
        family("llmopt_budget_usd", "Spend budget per app (0: none)", ["period"], budgets)
        family(
            "llmopt_pipeline_sample_age_seconds",
            "Seconds since the last sample",
            [],
            {} if age is None else {(): age},
        )
        family(
            "llmopt_pipeline_sample_errors",
            "Failed samples by source",
            ["source"],
            {(k,): float(v) for k, v in self._sampler.errors.items()},
        )
        return out

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the families are read at scrape time."""
        return []
