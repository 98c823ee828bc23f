"""Per-item isolation in the dataflow: what makes a step raise is quarantined, the stream goes on.

- Decode: a batch whose decoding raises (it is documented never to) is decoded record by record;
  each record that still raises is a dead letter with reason ``decoder raised: ...``.
- Window state (:class:`GuardedApp`): a batch of an app that makes
  :class:`~operators.app_windows.AppWindows` raise is quarantined (its event ids and source
  offsets: the records stay on the telemetry topic) with stage ``app_windows``; after
  :data:`MAX_STATE_FAILURES` failures in a row the app's state is reset, and a quarantine
  record says so (the windows that state still held open are lost; the other apps are
  untouched). A batch that raised may have been partly applied before it raised.
- Analyzers and strategies: the runners already skip an analyzer or strategy that raises; the
  period it raised on is quarantined with stage ``analyzer:NAME`` / ``strategy:NAME``.
- Sinks (windows, strays, insights, actuator): see :class:`sinks.database.SinkGuard`.

Every quarantine record carries the headers ``reason``, ``stage`` and ``app``
(:func:`sinks.quarantine.quarantined`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from core.event_limits import MAX_RECORD_BYTES
from core.events import AppEvents, DecodedRecords, decode_records
from core.insights import WindowGroup
from operators.app_windows import AppWindows, Output
from operators.strategies.base import StrategyInput
from sinks.quarantine import DlqMsg, describe, encode_item, quarantined

__all__ = [
    "MAX_STATE_FAILURES",
    "AppBatch",
    "GuardedApp",
    "Origin",
    "decode_isolated",
    "period_failures",
]

_log = logging.getLogger(__name__)

#: Failures in a row after which an app's window state is considered poisoned and reset.
MAX_STATE_FAILURES = 3


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an app's share of a poll came from: one partition, an offset range."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int

    def headers(self) -> list[tuple[str, str]]:
        """The ``source.*`` headers of a quarantine record."""
        return [
            ("source.topic", self.topic),
            ("source.partition", str(self.partition)),
            ("source.offset", str(self.first_offset)),
            ("source.offset_end", str(self.last_offset)),
        ]


@dataclass(frozen=True, slots=True)
class AppBatch:
    """One app's share of one poll, with the offsets it came from."""

    events: AppEvents
    origin: Origin | None


def decode_isolated(
    values: Sequence[bytes | None], latest_ms: int | None, max_bytes: int = MAX_RECORD_BYTES
) -> tuple[DecodedRecords, list[tuple[int, str]]]:
    """``decode_records`` that survives a decoder bug: (decoded, records that made it raise).

    The common path is one call. Only when it raises is each record decoded alone to find the
    ones that raise; the rest are decoded together again. Positions are those of ``values``.
    """
    try:
        return decode_records(values, latest_ms, max_bytes), []
    except Exception as exc:
        _log.error("decoder raised on a batch of %d records: %s", len(values), describe(exc))
    raising: list[tuple[int, str]] = []
    kept: list[int] = []
    for i, value in enumerate(values):
        try:
            decode_records([value], latest_ms, max_bytes)
        except Exception as exc:
            raising.append((i, "decoder raised: " + describe(exc)))
        else:
            kept.append(i)
    decoded = decode_records([values[i] for i in kept], latest_ms, max_bytes)
    rejected = [(kept[j], reason) for j, reason in decoded.rejected]
    return DecodedRecords(decoded.apps, rejected), raising


def _event_ids(events: AppEvents) -> list[str]:
    return [*events.calls.event_id, *(fb.event_id for fb in events.feedback)]


class GuardedApp:
    """One app's :class:`AppWindows` behind a guard: a raise quarantines, never stops the flow.

    Args:
        state: The app's window state.
        fresh: Makes an empty state (used when a state keeps raising).
    """

    def __init__(self, state: AppWindows, fresh: Callable[[], AppWindows]) -> None:
        self.state = state
        self._fresh = fresh
        self._app = ""
        self._failures = 0

    def run(
        self, step: Callable[[AppWindows], list[Output]], batch: AppBatch | None
    ) -> list[Output | DlqMsg]:
        """``step(state)``'s outputs, or the quarantine records of its failure."""
        if batch is not None and len(batch.events.calls):
            self._app = batch.events.calls.app
        elif batch is not None and batch.events.feedback:
            self._app = batch.events.feedback[0].app
        try:
            out: list[Output | DlqMsg] = list(step(self.state))
        except Exception as exc:
            return self._failed(exc, batch)
        self._failures = 0
        return out

    def _failed(self, exc: Exception, batch: AppBatch | None) -> list[Output | DlqMsg]:
        self._failures += 1
        _log.exception("window state of app %r raised (failure %d)", self._app, self._failures)
        body: dict[str, object] = {"app": self._app}
        extra: list[tuple[str, str]] = []
        if batch is not None:
            body["event_ids"] = _event_ids(batch.events)
            if batch.origin is not None:
                body["source"] = msgspec.to_builtins(batch.origin)
                extra = batch.origin.headers()
        out: list[Output | DlqMsg] = [
            quarantined(encode_item(body), describe(exc), "app_windows", app=self._app, extra=extra)
        ]
        if self._failures >= MAX_STATE_FAILURES:
            lost = {"app": self._app, "state": "reset", "failures": self._failures}
            reason = f"window state raised {self._failures} times in a row; reset: {describe(exc)}"
            out.append(quarantined(encode_item(lost), reason, "app_windows", app=self._app))
            self.state = self._fresh()
            self._failures = 0
        return out


def period_failures(failures: Sequence[tuple[str, BaseException, WindowGroup]]) -> list[DlqMsg]:
    """Quarantine records of the periods analyzers raised on (stage ``analyzer:NAME``)."""
    return [
        quarantined(encode_item(group), describe(exc), f"analyzer:{name}", app=group.app)
        for name, exc, group in failures
    ]


def strategy_failures(
    failures: Sequence[tuple[str, BaseException, StrategyInput]],
) -> list[DlqMsg]:
    """Quarantine records of the (app, task) periods strategies raised on."""
    return [
        quarantined(encode_item(period), describe(exc), f"strategy:{name}", app=period.app)
        for name, exc, period in failures
    ]
