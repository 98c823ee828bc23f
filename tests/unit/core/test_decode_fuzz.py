"""Fuzzing the decoder (issue 16): any bytes Kafka can hold become an event or a rejection.

Batches mix valid events, arbitrary bytes and contract-shaped objects whose fields take every
JSON type and extreme (huge ints, 1e308, NUL, bad UTF-8, deep nesting, oversized records).
``decode_records`` must never raise, must account for every record exactly once, in order,
agree with ``decode_event`` record by record, and accept only values within the limits.
"""

from __future__ import annotations

import json
import math
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

T0_MS = 1_767_225_600_000  # 2026-01-01
MAX_BYTES = 4096  # a small limit, so oversized records are cheap to make
FIELDS = (
    "kind",
    "event_id",
    "timestamp",
    "app",
    "task",
    "operation",
    "provider",
    "model",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cost_usd",
    "status",
    "error_type",
    "finish_reason",
    "quality",
    "prompt_hash",
    "prompt_tokens_fixed",
    "config_version",
    "variant",
    "request_id",
    "user_id",
    "attributes",
)


def valid_call(i: int) -> dict[str, Any]:
    """A valid llm_call event."""
    return {
        "event_id": f"e{i}",
        "timestamp": T0_MS + i,
        "app": f"app{i % 3}",
        "model": "m",
        "latency_ms": 10.0 + i,
        "input_tokens": i,
        "output_tokens": 1,
    }


def encode(value: Any) -> bytes:
    """JSON bytes; non-finite floats are not JSON, so they are written as huge literals."""
    text = json.dumps(value, allow_nan=True)
    return text.replace("-Infinity", "-1e999").replace("Infinity", "1e999").encode()


def nested(depth: int) -> Any:
    out: Any = 1
    for level in range(depth):
        out = [out] if level % 2 else {"k": out}
    return out


EXTREME_INTS = st.sampled_from(
    [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64, 2**64 + 1, -(2**63), 10**30]
)
EXTREME_FLOATS = st.sampled_from(
    [0.0, -0.0, 1e-320, 5e-324, 1e308, 1.79e308, -1e308, 1e15, math.inf, -math.inf, 0.5]
)
WEIRD_TEXT = st.sampled_from(
    [
        "",
        "\x00",
        "a\x00b",
        "NaN",
        "Infinity",
        "-Infinity",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "8999-12-31T23:59:59Z",
        "2026-01-01T00:00:00",
        "\ud83d\ude00",
        "x" * 600,
        "null",
    ]
)
LEAVES = (
    st.none()
    | st.booleans()
    | EXTREME_INTS
    | st.integers()
    | EXTREME_FLOATS
    | st.floats()
    | WEIRD_TEXT
    | st.text(max_size=12)
)
WILD = st.recursive(
    LEAVES,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=5,
) | st.integers(min_value=30, max_value=40).map(nested)


@st.composite
def contract_objects(draw: st.DrawFn) -> bytes:
    """A valid event with some fields replaced by wild values (or removed)."""
    obj: dict[str, Any] = valid_call(draw(st.integers(0, 1000)))
    if draw(st.booleans()):
        obj["kind"] = "feedback"
        obj["request_id"] = "r"
        obj["quality"] = 0.5
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.integers(0, 5)) == 0:
            obj.pop(name, None)
        else:
            obj[name] = draw(WILD)
    return encode(obj)


@st.composite
def byte_level_damage(draw: st.DrawFn) -> bytes:
    """Records broken below the JSON level: bad UTF-8, raw NUL, deep nesting, size, cuts."""
    good = encode(valid_call(draw(st.integers(0, 1000))))
    kind = draw(st.integers(0, 6))
    if kind == 0:  # invalid UTF-8 inside a string
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]))
        return good.replace(b'"m"', b'"m' + junk + b'"', 1)
    if kind == 1:  # a raw control character or an escaped lone surrogate
        return good.replace(b'"m"', draw(st.sampled_from([b'"m\x00"', b'"\\ud800"'])), 1)
    if kind == 2:  # nested deeper than the attribute limit, or than the decoder's stack
        depth = draw(st.sampled_from([33, 40, 1200, 1500]))
        where = draw(st.sampled_from([b'"attributes":', b'"other":']))
        return good[:-1] + b"," + where + b"[" * depth + b"]" * depth + b"}"
    if kind == 3:  # over the size limit
        return good[:-1] + b',"attributes":{"pad":"' + b"x" * MAX_BYTES + b'"}}'
    if kind == 4:  # cut anywhere
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == 5:  # arbitrary bytes
        return draw(st.binary(max_size=64))
    return b" " + good + b"\n"  # whitespace around a valid event


RECORDS = st.lists(
    st.integers(0, 1000).map(lambda i: encode(valid_call(i)))
    | contract_objects()
    | byte_level_damage(),
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
