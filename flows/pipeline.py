"""The processor dataflow: Kafka → decode (bad → DLQ) → dedup → event-time windows → storage.

Operators here only wire the pure logic of ``operators``; sources and sinks are injectable so
tests can run the same flow with ``TestingSource``/``TestingSink``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import bytewax.operators as op
import structlog
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import windowing as win
from bytewax.outputs import Sink

from core.events import Event, LlmCall, Rejection, decode_event
from core.settings import Settings
from core.stats import WindowKey, WindowStats
from operators.dedup import DedupState
from operators.window_stats import summarize
from sinks.dead_letters import dead_letter
from sinks.window_store import WindowStoreSink

__all__ = ["FlowIO", "build_flow"]

_log = structlog.get_logger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Msg = KafkaSourceMessage[bytes | None, bytes | None]
DlqMsg = KafkaSinkMessage[bytes | None, bytes | None]


@dataclass(frozen=True)
class FlowIO:
    """Where the flow reads and writes; ``None`` means the real Kafka topics / database."""

    source: Source[Msg] | None = None
    windows: Sink[WindowStats] | None = None
    dead_letters: Sink[DlqMsg] | None = None


def _input(
    flow: Dataflow, settings: Settings, io: FlowIO
) -> tuple[Stream[Msg], Stream[DlqMsg] | None]:
    """The telemetry records, and the consumer errors (as DLQ records) when reading Kafka."""
    if io.source is not None:
        return op.input("in", flow, io.source), None
    kafka = kop.input(
        "kafka_in",
        flow,
        brokers=settings.kafka.brokers,
        topics=[settings.kafka.telemetry_topic],
        tail=settings.kafka.tail,
    )
    consumer_errors = op.map(
        "consumer_error_to_dlq", kafka.errs, lambda e: dead_letter(e.msg, f"kafka: {e.err}")
    )
    return kafka.oks, consumer_errors


def _dedup(
    state: DedupState | None, event: Event, ttl: timedelta
) -> tuple[DedupState, list[Event]]:
    state = state if state is not None else DedupState(ttl)
    return state, [event] if state.first_sighting(event.event_id, event.timestamp) else []


def _log_late(step_id: str, call: LlmCall) -> None:
    # Counted and stored per (app, task) by the processor issue; logged, never dropped silently.
    _log.warning(
        "late_event",
        step=step_id,
        app=call.app,
        task=call.task,
        event_id=call.event_id,
        timestamp=call.timestamp.isoformat(),
    )


def _segment(call: LlmCall) -> str:
    return WindowKey(call.app, call.task, call.model, call.variant).route()


def build_flow(settings: Settings, io: FlowIO | None = None) -> Dataflow:
    """Build the processor dataflow for ``settings``.

    Args:
        settings: Validated settings (topics, windows, lateness, dedup TTL, database).
        io: Replacement source/sinks for tests; the real Kafka and database by default.

    Returns:
        The dataflow, ready for ``python -m bytewax.run`` or ``bytewax.testing.run_main``.
    """
    io = io or FlowIO()
    p = settings.processor
    flow = Dataflow("llmopt_processor")
    messages, consumer_errors = _input(flow, settings, io)

    decoded = op.map("decode", messages, lambda m: (m, decode_event(m.value)))
    split = op.branch("valid", decoded, lambda pair: not isinstance(pair[1], Rejection))
    rejected = op.map(
        "rejection_to_dlq",
        split.falses,
        lambda pair: dead_letter(pair[0], pair[1].reason),  # type: ignore[union-attr]
    )
    events: Stream[Event] = op.map("event", split.trues, lambda pair: pair[1])  # type: ignore[arg-type,return-value]

    by_app = op.key_on("key_by_app", events, lambda e: e.app)
    unique = op.stateful_flat_map("dedup", by_app, lambda s, e: _dedup(s, e, p.dedup_ttl))
    calls = op.filter_map(
        "llm_calls", unique, lambda kv: kv[1] if isinstance(kv[1], LlmCall) else None
    )

    by_segment = op.key_on("key_by_segment", calls, _segment)
    clock: win.EventClock[LlmCall] = win.EventClock(
        lambda c: c.timestamp, wait_for_system_duration=p.allowed_lateness
    )
    windower = win.TumblingWindower(length=p.tumbling_window, align_to=EPOCH)
    collected = win.collect_window("tumbling", by_segment, clock, windower)

    def to_stats(item: tuple[str, tuple[int, list[LlmCall]]]) -> WindowStats:
        _, (window_id, window_calls) = item
        start = EPOCH + window_id * p.tumbling_window
        first = window_calls[0]
        key = WindowKey(first.app, first.task, first.model, first.variant)
        return summarize("tumbling", start, start + p.tumbling_window, key, window_calls)

    stats = op.map("window_stats", collected.down, to_stats)
    op.output(
        "windows_out", stats, io.windows or WindowStoreSink(settings.storage.resolved_database_url)
    )

    late = op.map("late_call", collected.late, lambda kv: kv[1][1])
    op.inspect("log_late", late, _log_late)

    dlq = (
        rejected if consumer_errors is None else op.merge("dead_letters", rejected, consumer_errors)
    )
    if io.dead_letters is not None:
        op.output("dlq_out", dlq, io.dead_letters)
    else:
        kop.output("dlq_out", dlq, brokers=settings.kafka.brokers, topic=settings.kafka.dlq_topic)
    return flow
