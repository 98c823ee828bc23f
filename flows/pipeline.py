"""The processor dataflow, batch by batch.

    Kafka batches ─► decode (bad records ─► DLQ) ─► split by app ─► per-app state:
    dedup · feedback join · watermark · tumbling + sliding windows ─► windows, strays ─► storage
    tumbling periods ─► analyzers ─► insights ─► storage
                     ─► strategies + per-variant sides ─► actuator (canary judge, rollouts)

Every item between steps is a batch (one Kafka poll, or one app's share of it), so Bytewax's
per-item cost is paid per batch, not per record. The per-app state is the pure
:class:`operators.app_windows.AppWindows`; this module only wires it. Sources and sinks are
injectable so tests and the backtest run the very same steps.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulLogic
from bytewax.outputs import Sink
from typing_extensions import override

from core.crash_report import note_batch
from core.insights import Insight
from core.settings import Settings
from core.stats import StrayEvent, WindowStats
from flows.isolation import (
    AppBatch,
    GuardedApp,
    Origin,
    decode_isolated,
    period_failures,
    strategy_failures,
)
from flows.kafka_batches import KafkaBatchSource, RecordBatch
from operators.analyzers import AnalysisRunner, Analyzer, build_analyzers
from operators.analyzers.runner import Period
from operators.app_windows import AppWindows, Output, WindowSpec
from operators.pricing import PriceTable
from operators.strategies import Strategy, StrategyRunner, build_strategies
from sinks.actuator import PeriodWork, actuator_sink
from sinks.database import SinkGuard, StoreSink, insight_sink, stray_sink, window_sink
from sinks.dead_letters import dead_letter, dlq_producer_config
from sinks.quarantine import DeadLetterWriter

__all__ = ["FlowIO", "build_flow"]

# stdlib logging: the dataflow process does not load structlog (and rich, which it imports).
_log = logging.getLogger(__name__)
DlqMsg = KafkaSinkMessage[bytes | None, bytes | None]
T = TypeVar("T")


@dataclass(frozen=True)
class FlowIO:
    """Where the flow reads and writes; ``None`` means the Kafka topics and the database."""

    source: Source[RecordBatch] | None = None
    windows: Sink[WindowStats] | None = None
    strays: Sink[StrayEvent] | None = None
    insights: Sink[Insight] | None = None
    dead_letters: Sink[DlqMsg] | None = None
    actuator: Sink[PeriodWork] | None = None


@dataclass(frozen=True, slots=True)
class _Decoded:
    by_app: dict[str, AppBatch]
    dead: list[DlqMsg]


def _decode(batch: RecordBatch, latest_ms: int | None, max_bytes: int) -> _Decoded:
    for error in batch.errors:
        _log.warning("kafka consumer error on %s[%d]: %s", batch.topic, batch.partition, error)
    decoded, raising = decode_isolated(batch.values, latest_ms, max_bytes)
    dead = [
        dead_letter(
            batch.values[i], reason, batch.topic, batch.partition, batch.offsets[i], max_bytes
        )
        for i, reason in [*decoded.rejected, *raising]
    ]
    origin = None
    if batch.offsets:
        origin = Origin(batch.topic, batch.partition, batch.offsets[0], batch.offsets[-1])
        note_batch(batch.topic, batch.partition, batch.offsets[0], batch.offsets[-1])
    return _Decoded({app: AppBatch(ev, origin) for app, ev in decoded.apps.items()}, dead)


def _only(kind: type[T]) -> Callable[[object], T | None]:
    """A ``filter_map`` function that keeps the items of one type."""
    return lambda item: item if isinstance(item, kind) else None


def _never() -> bool:
    return False


class _AnalysisLogic(StatefulLogic[WindowStats, Period | DlqMsg, AnalysisRunner]):
    """Bytewax wiring of one app's :class:`AnalysisRunner`: closed windows in, periods out.

    A period an analyzer raised on also comes out as a quarantine record.
    """

    def __init__(self, runner: AnalysisRunner, stopping: Callable[[], bool]) -> None:
        self._runner = runner
        self._stopping = stopping

    @override
    def on_item(self, value: WindowStats) -> tuple[Iterable[Period | DlqMsg], bool]:
        periods = self._runner.take_periods([value])
        return [*periods, *period_failures(self._runner.take_failures())], StatefulLogic.RETAIN

    @override
    def on_eof(self) -> tuple[Iterable[Period | DlqMsg], bool]:
        if self._stopping():  # a stop, not the end of the input: the period stays open
            return [], StatefulLogic.RETAIN
        periods = self._runner.flush_periods()
        return [*periods, *period_failures(self._runner.take_failures())], StatefulLogic.RETAIN

    @override
    def snapshot(self) -> AnalysisRunner:
        return copy.deepcopy(self._runner)


class _StrategyLogic(StatefulLogic[Period, PeriodWork | DlqMsg, StrategyRunner]):
    """Bytewax wiring of one app's :class:`StrategyRunner`: periods in, actuator work out.

    A period a strategy raised on also comes out as a quarantine record.
    """

    def __init__(self, runner: StrategyRunner) -> None:
        self._runner = runner

    @override
    def on_item(self, value: Period) -> tuple[Iterable[PeriodWork | DlqMsg], bool]:
        work = PeriodWork.of(value.group, self._runner.take(value.group, value.insights))
        return [work, *strategy_failures(self._runner.take_failures())], StatefulLogic.RETAIN

    @override
    def snapshot(self) -> StrategyRunner:
        return copy.deepcopy(self._runner)


class _AppLogic(StatefulLogic[AppBatch, Output | DlqMsg, bytes]):
    """Bytewax wiring of one app's :class:`AppWindows`: items, timers, end of input, snapshots.

    The state is guarded (:class:`flows.isolation.GuardedApp`): what makes it raise comes out
    as a quarantine record instead of stopping the dataflow.
    """

    def __init__(
        self, guard: GuardedApp, now: Callable[[], float] | None, stopping: Callable[[], bool]
    ) -> None:
        self._guard = guard
        self._now = now
        self._stopping = stopping

    def _time(self) -> float | None:
        return self._now() if self._now is not None else None

    @override
    def on_item(self, value: AppBatch) -> tuple[Iterable[Output | DlqMsg], bool]:
        now, ev = self._time(), value.events
        out = self._guard.run(lambda s: s.process_batch(ev.calls, ev.feedback, now), value)
        return out, StatefulLogic.RETAIN

    @override
    def on_notify(self) -> tuple[Iterable[Output | DlqMsg], bool]:
        now = self._time()
        return self._guard.run(lambda s: s.advance(now), None), StatefulLogic.RETAIN

    @override
    def on_eof(self) -> tuple[Iterable[Output | DlqMsg], bool]:
        if self._stopping():  # a stop, not the end of the input: open windows stay open
            return [], StatefulLogic.RETAIN
        return self._guard.run(lambda s: s.flush(), None), StatefulLogic.RETAIN

    @override
    def notify_at(self) -> datetime | None:
        if self._now is None:
            return None
        at = self._guard.state.next_close_at()
        return datetime.fromtimestamp(at, tz=UTC) if at is not None else None

    @override
    def snapshot(self) -> bytes:
        return self._guard.state.snapshot()


def _tumbling(item: tuple[str, Output | DlqMsg]) -> tuple[str, WindowStats] | None:
    app, value = item
    return (app, value) if isinstance(value, WindowStats) and value.kind == "tumbling" else None


def _period(item: tuple[str, Period | DlqMsg]) -> tuple[str, Period] | None:
    app, value = item
    return (app, value) if isinstance(value, Period) else None


def build_flow(
    settings: Settings,
    io: FlowIO | None = None,
    analyzers: Sequence[Analyzer[Any]] | None = None,
    strategies: Sequence[Strategy[Any]] | None = None,
    stopping: Callable[[], bool] = _never,
) -> Dataflow:
    """Build the processor dataflow for ``settings``.

    Args:
        settings: Validated settings (topics, windows, lateness, dedup TTL, database).
        io: Replacement source/sinks (tests, backtest); Kafka and the database by default.
        analyzers: The analyzers to run (default: those of the settings).
        strategies: The decision strategies to run (default: those of the settings).
        stopping: True once the process is asked to stop (:mod:`flows.stop`): the Kafka source
            ends its partitions, and the end of input that follows keeps open windows and
            periods in the snapshot instead of flushing them.

    Returns:
        The dataflow, ready for ``python -m bytewax.run`` or ``bytewax.testing.run_main``.
    """
    io = io or FlowIO()
    kafka = settings.kafka
    spec = WindowSpec.from_settings(settings.processor)
    # Idle time advances the watermark only while tailing a live topic; a bounded input (a
    # backfill, a backtest) closes everything at its end, so its output never depends on speed.
    now: Callable[[], float] | None = time.time if kafka.tail and io.source is None else None

    prices = PriceTable(settings.processor.prices)

    def build(resume: bytes | None) -> _AppLogic:
        state = (
            AppWindows(spec, prices)
            if resume is None
            else AppWindows.restore(resume, time.time(), prices)
        )
        return _AppLogic(GuardedApp(state, lambda: AppWindows(spec, prices)), now, stopping)

    flow = Dataflow("llmopt_processor")
    source = io.source or KafkaBatchSource(
        kafka.brokers,
        kafka.telemetry_topic,
        tail=kafka.tail,
        stopping=stopping,
        ensure={kafka.telemetry_topic: kafka.partitions, kafka.dlq_topic: kafka.partitions},
    )
    batches = op.input("telemetry", flow, source)
    skew_s = settings.processor.max_clock_skew.total_seconds()
    max_bytes = kafka.max_message_bytes
    if io.source is None:  # live or backfill: nothing may come from beyond the clock skew
        decoded = op.map(
            "decode",
            batches,
            lambda b: _decode(b, int((time.time() + skew_s) * 1000), max_bytes),
        )
    else:  # recorded or test input: its own time, no wall clock
        decoded = op.map("decode", batches, lambda b: _decode(b, None, max_bytes))
    by_app = op.flat_map("split_by_app", decoded, lambda d: d.by_app.items())
    outputs = op.stateful("app_windows", by_app, build)
    results = op.map("unkey", outputs, lambda kv: kv[1])
    analyzers = list(build_analyzers(settings) if analyzers is None else analyzers)
    strategies = list(build_strategies(settings) if strategies is None else strategies)
    closed = op.filter_map("tumbling_windows", outputs, _tumbling)
    periods = op.stateful(
        "analyzers",
        closed,
        lambda resume: _AnalysisLogic(
            (resume or AnalysisRunner(analyzers)).with_analyzers(analyzers), stopping
        ),
    )
    windows = op.filter_map("windows", results, _only(WindowStats))
    strays = op.filter_map("strays", results, _only(StrayEvent))
    db = settings.storage.resolved_database_url
    dlq_writer = DeadLetterWriter(kafka.brokers, kafka.dlq_topic)
    wait_s = settings.processor.database_retry_max_delay.total_seconds()

    def guarded(name: str, sink: StoreSink[T]) -> StoreSink[T]:
        return sink.guarded(SinkGuard(name, wait_s, dlq_writer))

    op.output("windows_out", windows, io.windows or guarded("windows", window_sink(db)))
    op.output("strays_out", strays, io.strays or guarded("strays", stray_sink(db)))
    analyzed = op.map("unkey_periods", periods, lambda kv: kv[1])
    done = op.filter_map("periods", periods, _period)
    found = op.flat_map("unkey_insights", analyzed, lambda p: getattr(p, "insights", []))
    op.output("insights_out", found, io.insights or guarded("insights", insight_sink(db)))
    work = op.stateful(
        "strategies",
        done,
        lambda resume: _StrategyLogic(
            (resume or StrategyRunner(strategies)).with_strategies(strategies)
        ),
    )
    planned = op.map("unkey_work", work, lambda kv: kv[1])
    actions = op.filter_map("actuator_work", planned, _only(PeriodWork))
    op.output(
        "actuator_out", actions, io.actuator or guarded("actuator", actuator_sink(db, settings))
    )

    dead = op.merge(
        "dead_and_quarantined",
        op.flat_map("dead_letters", decoded, lambda d: d.dead),
        op.filter_map("quarantined_windows", results, _only(KafkaSinkMessage)),
        op.filter_map("quarantined_periods", analyzed, _only(KafkaSinkMessage)),
        op.filter_map("quarantined_work", planned, _only(KafkaSinkMessage)),
    )
    if io.dead_letters is not None:
        op.output("dlq_out", dead, io.dead_letters)
    else:
        kop.output(
            "dlq_out",
            dead,
            brokers=kafka.brokers,
            topic=kafka.dlq_topic,
            add_config=dlq_producer_config(max_bytes),
        )
    return flow
