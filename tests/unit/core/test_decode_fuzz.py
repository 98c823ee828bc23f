"""Fuzzing the decoder (issue 16): any bytes Kafka can hold become an event or a rejection.

Batches mix valid events, arbitrary bytes and contract-shaped objects whose fields take every
JSON type and extreme (huge ints, 1e308, NUL, bad UTF-8, deep nesting, oversized records).
``decode_records`` must never raise, must account for every record exactly once, in order,
agree with ``decode_event`` record by record, and accept only values within the limits.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.event_limits import (
    MAX_CONFIG_VERSION,
    MAX_COST_USD,
    MAX_DURATION_MS,
    MAX_TIME,
    MAX_TOKENS,
    MIN_TIME,
    STORED_TEXT_FIELDS,
)
from core.events import (
    DecodedRecords,
    Feedback,
    LlmCall,
    Rejection,
    decode_event,
    decode_records,
)
from tests.fuzz_records import byte_level_damage, contract_objects, encode, nested, valid_call

MAX_BYTES = 4096  # a small limit, so oversized records are cheap to make


RECORDS = st.lists(
    st.integers(0, 1000).map(lambda i: encode(valid_call(i)))
    | contract_objects()
    | byte_level_damage(MAX_BYTES),
    min_size=1,
    max_size=25,
)


def check_limits(event: LlmCall | Feedback) -> None:
    assert MIN_TIME <= event.timestamp < MAX_TIME
    for name in STORED_TEXT_FIELDS:
        value = getattr(event, name, None)
        assert value is None or ("\x00" not in value and len(value) <= 512)
    if isinstance(event, Feedback):
        assert 0.0 <= event.quality <= 1.0
        return
    for tokens in (event.input_tokens, event.output_tokens, event.cache_read_tokens):
        assert tokens is None or 0 <= tokens <= MAX_TOKENS
    for ms in (event.latency_ms, event.ttft_ms):
        assert ms is None or 0 <= ms <= MAX_DURATION_MS
    assert event.cost_usd is None or 0 <= event.cost_usd <= MAX_COST_USD
    assert event.config_version is None or 0 <= event.config_version <= MAX_CONFIG_VERSION
    assert event.quality is None or 0.0 <= event.quality <= 1.0


def check_batch(records: list[bytes], decoded: DecodedRecords) -> None:
    """Every record is one event or one rejection, as decode_event says, in order."""
    singles = [decode_event(r, MAX_BYTES) for r in records]
    positions = [i for i, _ in decoded.rejected]
    assert positions == sorted(set(positions))
    assert all(reason for _, reason in decoded.rejected)
    assert decoded.rejected == [
        (i, s.reason) for i, s in enumerate(singles) if isinstance(s, Rejection)
    ]
    accepted = [s for s in singles if not isinstance(s, Rejection)]
    for event in accepted:
        check_limits(event)
    for app in {e.app for e in accepted}:
        got = decoded.apps[app]
        calls = [e for e in accepted if isinstance(e, LlmCall) and e.app == app]
        assert got.calls.event_id == [c.event_id for c in calls]
        assert got.feedback == [e for e in accepted if isinstance(e, Feedback) and e.app == app]
        assert got.calls.tokens.tolist() == [
            [c.input_tokens, c.output_tokens, c.cache_read_tokens or 0] for c in calls
        ]
    total = sum(len(a.calls) + len(a.feedback) for a in decoded.apps.values())
    assert total + len(decoded.rejected) == len(records)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS)
def test_any_batch_yields_one_event_or_one_rejection_per_record(records: list[bytes]) -> None:
    check_batch(records, decode_records(records, max_bytes=MAX_BYTES))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=20))
def test_arbitrary_bytes_in_batches(records: list[bytes]) -> None:
    check_batch(records, decode_records(records, max_bytes=MAX_BYTES))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 1000), st.integers(0, 1000), st.data())
def test_two_broken_records_never_join_into_events(a: int, b: int, data: st.DataObject) -> None:
    first, second = encode(valid_call(a)), encode(valid_call(b))
    cut = data.draw(st.integers(1, len(second) - 1))
    # b'{A},{B..' + b'..B}' joined with a comma is the valid array [{A},{B}].
    records = [first + b"," + second[:cut], second[cut:]]
    decoded = decode_records(records, max_bytes=MAX_BYTES)
    assert decoded.apps == {}
    assert [i for i, _ in decoded.rejected] == [0, 1]


def test_a_merge_and_a_split_that_keep_the_count_are_caught() -> None:
    # Record 0 opens an array that record 1 closes (one element from two records); record 2
    # holds two objects (two elements from one record): the counts agree, the records do not.
    call = encode(valid_call(1))[:-1]
    records = [
        call + b',"attributes":{"a":[[{"b":1}',
        b'{"c":2}]]}}',
        encode(valid_call(2)) + b"," + encode(valid_call(3)),
    ]
    decoded = decode_records(records, max_bytes=MAX_BYTES)
    assert decoded.apps == {}
    assert [i for i, _ in decoded.rejected] == [0, 1, 2]


def _reason(record: bytes) -> str:
    result = decode_event(record, MAX_BYTES)
    assert isinstance(result, Rejection), result
    return result.reason


def with_field(name: str, value: Any) -> bytes:
    return encode({**valid_call(1), name: value})


def test_rejection_reasons_name_the_problem() -> None:
    good = encode(valid_call(1))
    assert "not valid UTF-8" in _reason(good.replace(b'"m"', b'"m\xff"'))
    assert "nested too deeply" in _reason(good[:-1] + b',"x":' + b"[" * 1500 + b"]" * 1500 + b"}")
    assert "deeper than 32 levels - at `$.attributes`" in _reason(
        with_field("attributes", nested(41))
    )
    assert "NUL character in a string - at `$.app`" in _reason(with_field("app", "a\x00"))
    assert "<= 1000000000 - at `$.input_tokens`" in _reason(with_field("input_tokens", 2**63 + 1))
    assert "at `$.latency_ms`" in _reason(with_field("latency_ms", 1.79e308))
    assert "at `$.config_version`" in _reason(with_field("config_version", 2**31))
    assert "outside the accepted range 1970-01-01 to 9000-01-01" in _reason(
        with_field("timestamp", "0001-01-01T00:00:00Z")
    )
    assert "record too large: 5000 bytes, the limit is 4096" in _reason(
        good[:-1] + b',"p":"' + b"x" * (5000 - len(good) - 7) + b'"}'
    )
    assert "Number out of range" in _reason(good.replace(b"11.0", b"1e999", 1))


def test_valid_records_decode_in_one_batch_with_the_limits_at_their_edges() -> None:
    edge = {
        **valid_call(1),
        "input_tokens": MAX_TOKENS,
        "latency_ms": MAX_DURATION_MS,
        "cost_usd": MAX_COST_USD,
        "config_version": MAX_CONFIG_VERSION,
        "timestamp": (MAX_TIME - timedelta(milliseconds=1)).isoformat(),
        "attributes": nested(31),
    }
    decoded = decode_records([encode(edge), encode(valid_call(2))], max_bytes=MAX_BYTES)
    assert decoded.rejected == []
    (call,) = decoded.apps["app1"].calls.event_id
    assert call == "e1"
    assert decode_event(encode(edge), MAX_BYTES) == LlmCall(
        event_id="e1",
        timestamp=datetime(8999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        app="app1",
        model="m",
        latency_ms=MAX_DURATION_MS,
        input_tokens=MAX_TOKENS,
        output_tokens=1,
        cost_usd=MAX_COST_USD,
        config_version=MAX_CONFIG_VERSION,
        attributes=nested(31),
    )


def test_one_out_of_range_value_in_a_valid_batch_is_rejected_alone() -> None:
    # Valid JSON throughout, so the whole batch decodes at once; the bad values are found after.
    bad = {
        1: with_field("timestamp", 2**64 + 1),
        3: with_field("app", "a\x00b"),
        5: with_field("attributes", nested(41)),
        7: with_field("timestamp", "0001-01-01T00:00:00Z"),
    }
    records = [bad.get(i, encode(valid_call(i))) for i in range(9)]
    decoded = decode_records(records, max_bytes=MAX_BYTES)
    assert [i for i, _ in decoded.rejected] == [1, 3, 5, 7]
    accepted = [e for a in decoded.apps.values() for e in a.calls.event_id]
    assert sorted(accepted) == ["e0", "e2", "e4", "e6", "e8"]
