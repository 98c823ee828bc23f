"""Validate a batch of records at once: each record's app or event time, or why it is not an event.

The ingest paths (OTLP, REST, gRPC) validate every record exactly as the processor will
(:func:`core.events.decode_event`) but keep only the app (the Kafka key) of a valid one; the
backtest keeps only its event time (to order the file). Decoding each record on its own and
building its event object cost ~8 µs per record on the collector's path; here the batch is
decoded in one call with the processor's batch decoder (:func:`core.events.decode_records`
shares it), the timestamps are checked, and only a record that is not a plain valid
``llm_call`` (feedback, a missing field, a bad timestamp) or a batch that the batch decoder
refuses goes through :func:`~core.events.decode_event`, so every result, and every reason, is
the one ``decode_event`` gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from core.event_limits import MAX_RECORD_BYTES
from core.events import (
    Event,
    Rejection,
    _decode_wires,
    _Wire,
    _wire_times,
    decode_event,
    parse_timestamp,
)

__all__ = ["apps_of_records", "times_of_records"]

T = TypeVar("T")
_SMALLEST_SPLIT = 32  # below this a refused batch is decoded record by record


def _plain(w: _Wire) -> bool:
    """Whether a wire with a valid timestamp is a valid ``llm_call`` as it stands."""
    return not (
        w.kind != "llm_call"
        or w.model is None
        or w.latency_ms is None
        or w.input_tokens is None
        or w.output_tokens is None
        or (w.shadow_model is None) is not (w.shadow_quality is None)
    )


def _checked(
    records: Sequence[bytes | None],
    max_bytes: int,
    of_wire: Callable[[_Wire], T],
    of_event: Callable[[Event], T],
) -> list[T | Rejection]:
    """Per record: ``of_wire`` of a plain valid call, else ``of_event`` or a rejection.

    Another valid event goes to ``of_event``; an invalid record gives exactly the rejection
    ``decode_event`` gives.
    """

    def one(raw: bytes | None) -> T | Rejection:
        result = decode_event(raw, max_bytes)
        return result if isinstance(result, Rejection) else of_event(result)

    wires = _decode_wires(records, max_bytes)
    if wires is None:
        if len(records) <= _SMALLEST_SPLIT:
            return [one(r) for r in records]
        # A few bad records (a cut line, a record over the limit) make the batch decoder refuse
        # the whole batch: halve it, so the good records around them keep the batch path.
        half = len(records) // 2
        return [
            *_checked(records[:half], max_bytes, of_wire, of_event),
            *_checked(records[half:], max_bytes, of_wire, of_event),
        ]
    bad_times: list[tuple[int, str]] = []
    _wire_times(wires, bad_times)
    bad = dict(bad_times)
    return [
        Rejection(bad[i]) if i in bad else of_wire(w) if _plain(w) else one(records[i])
        for i, w in enumerate(wires)
    ]


def apps_of_records(
    records: Sequence[bytes | None], max_bytes: int = MAX_RECORD_BYTES
) -> list[str | Rejection]:
    """For each record, the app of the event it holds, or the :class:`Rejection` saying why not.

    Args:
        records: Raw records (JSON events).
        max_bytes: Larger records are rejected without being parsed (as ``decode_event``).

    Returns:
        One entry per record, in order: the ``app`` of a valid event (``llm_call`` or
        ``feedback``), else exactly the rejection ``decode_event(record, max_bytes)`` gives.
    """
    return _checked(records, max_bytes, lambda w: w.app, lambda e: e.app)


def _wire_seconds(w: _Wire) -> float:
    # Epoch milliseconds: ms / 1000 and decode_event's datetime.timestamp() are both the
    # correctly rounded value of the same fraction, so they are the same float.
    t = w.timestamp
    return t / 1000 if type(t) is int else parse_timestamp(t).timestamp()


def times_of_records(
    records: Sequence[bytes | None], max_bytes: int = MAX_RECORD_BYTES
) -> list[float | Rejection]:
    """For each record, its event time, or the :class:`Rejection` saying why it is not an event.

    Args:
        records: Raw records (JSON events).
        max_bytes: Larger records are rejected without being parsed (as ``decode_event``).

    Returns:
        One entry per record, in order: ``decode_event(record).timestamp.timestamp()`` (epoch
        seconds, the same float) for a valid event, else exactly the rejection
        ``decode_event(record, max_bytes)`` gives.
    """
    return _checked(records, max_bytes, _wire_seconds, lambda e: e.timestamp.timestamp())
