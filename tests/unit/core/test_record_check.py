"""``apps_of_records`` gives, record by record, exactly what ``decode_event`` gives."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import Rejection, decode_event
from core.record_check import apps_of_records, times_of_records


def _call(i: int, **over: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"e{i}",
        "timestamp": "2026-11-29T10:00:00.812000Z",
        "app": f"app-{i % 3}",
        "model": "gpt-4o-mini",
        "latency_ms": 812.0,
        "input_tokens": 100,
        "output_tokens": 10,
        "attributes": {"otel.trace_id": "ab"},
    }
    event.update(over)
    return {k: v for k, v in event.items() if v is not None}


VARIANTS: list[dict[str, Any]] = [
    {},
    {"timestamp": 1_795_946_400_812},
    {"timestamp": "2026-11-29T10:00:00"},  # no offset
    {"timestamp": "yesterday"},
    {"timestamp": -5},
    {"model": None},
    {"latency_ms": -1.0},
    {"input_tokens": None, "output_tokens": None},
    {"kind": "feedback", "request_id": "r1", "quality": 0.7, "model": None},
    {"kind": "feedback", "quality": 0.7},
    {"kind": "feedback", "request_id": "r1"},
    {"kind": "other"},
    {"shadow_model": "m2"},
    {"shadow_model": "m2", "shadow_quality": 0.4},
    {"app": "bad\x00app"},
    {"user_id": "nul\x00"},
    {"attributes": {"a": "\\u0000 is text"}},
    {"attributes": json.loads('{"x": ' + "[" * 40 + "]" * 40 + "}")},  # too deep
    {"quality": 1.7},
    {"status": "weird"},
    {"event_id": ""},
]


def _record(choice: int, i: int) -> bytes:
    if choice == len(VARIANTS):
        return b"{not json"
    if choice == len(VARIANTS) + 1:
        return b"[1, 2]"
    return json.dumps(_call(i, **VARIANTS[choice])).encode()


def _expected(raw: bytes) -> str | Rejection:
    result = decode_event(raw)
    return result if isinstance(result, Rejection) else result.app


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, len(VARIANTS) + 1), min_size=1, max_size=12))
def test_batches_match_decode_event_record_by_record(choices: list[int]) -> None:
    records = [_record(c, i) for i, c in enumerate(choices)]
    assert apps_of_records(records) == [_expected(r) for r in records]


def test_all_valid_batch_gives_the_apps() -> None:
    records = [json.dumps(_call(i)).encode() for i in range(7)]
    assert apps_of_records(records) == [f"app-{i % 3}" for i in range(7)]


def test_empty_and_oversized_records() -> None:
    big = json.dumps(_call(1, attributes={"x": "y" * 1000})).encode()
    records = [b"", big, json.dumps(_call(2)).encode()]
    found = apps_of_records(records, max_bytes=600)
    assert found == [Rejection("empty record"), decode_event(big, 600), "app-2"]
    assert isinstance(found[1], Rejection)
    assert "record too large" in found[1].reason


def _expected_time(raw: bytes) -> float | Rejection:
    result = decode_event(raw)
    return result if isinstance(result, Rejection) else result.timestamp.timestamp()


TIMES = [
    1_795_946_400_812,
    1_795_946_400_812.5,  # a float of epoch ms
    "2026-11-29T10:00:00.812001Z",
    "2026-11-29T11:00:00.812001+01:00",  # the same moment with an offset
    "8999-12-31T23:59:59.999999Z",  # far from the epoch: the float is coarser than 1 µs
    0,
    221_845_392_000_000 - 1,  # the last accepted epoch millisecond
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, len(VARIANTS) + 1).map(lambda c: ("variant", c)),
            st.integers(0, len(TIMES) - 1).map(lambda t: ("time", t)),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_times_match_decode_event_record_by_record(picks: list[tuple[str, int]]) -> None:
    records = [
        _record(n, i) if kind == "variant" else json.dumps(_call(i, timestamp=TIMES[n])).encode()
        for i, (kind, n) in enumerate(picks)
    ]
    assert times_of_records(records) == [_expected_time(r) for r in records]


def test_times_of_an_all_valid_batch_of_epoch_milliseconds() -> None:
    records = [json.dumps(_call(i, timestamp=1_795_946_400_000 + i)).encode() for i in range(5)]
    assert times_of_records(records) == [(1_795_946_400_000 + i) / 1000 for i in range(5)]
