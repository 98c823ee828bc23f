"""Telemetry event decoding (CONTRACT.md §2): `decode_event`, `parse_timestamp`, `encode_event`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.event_limits import MAX_CONFIG_VERSION, MAX_COST_USD, MAX_DURATION_MS, MAX_TOKENS
from core.events import Feedback, LlmCall, Rejection, decode_event, encode_event, parse_timestamp
from tests.fuzz_records import FIELDS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOON_MS = 1_714_564_800_000  # 2024-05-01T12:00:00Z in epoch milliseconds

CALL: dict[str, Any] = {
    "event_id": "evt-1",
    "timestamp": "2024-05-01T12:00:00Z",
    "app": "support",
    "model": "gpt-4o-mini",
    "latency_ms": 812.5,
    "input_tokens": 1200,
    "output_tokens": 80,
}
FEEDBACK: dict[str, Any] = {
    "kind": "feedback",
    "event_id": "fb-1",
    "timestamp": "2024-05-01T12:00:05Z",
    "app": "support",
    "request_id": "req-9",
    "quality": 0.75,
}
CONTRACT_KEYS = FIELDS  # every field of CONTRACT.md §2 and its extensions


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def decode(obj: Any) -> LlmCall | Feedback | Rejection:
    return decode_event(raw(obj))


def call_with(**changes: Any) -> dict[str, Any]:
    return {**CALL, **changes}


def call_without(name: str) -> dict[str, Any]:
    return {k: v for k, v in CALL.items() if k != name}


def rejected(result: object) -> Rejection:
    assert isinstance(result, Rejection), f"expected a Rejection, got {result!r}"
    assert result.reason
    return result


# --- valid llm_call ---------------------------------------------------------------------------


def test_valid_llm_call_with_epoch_milliseconds() -> None:
    event = decode(call_with(timestamp=NOON_MS + 123))
    assert isinstance(event, LlmCall)
    assert event.timestamp == datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(0)
    assert event.event_id == "evt-1"
    assert event.app == "support"
    assert event.model == "gpt-4o-mini"
    assert event.latency_ms == 812.5
    assert event.input_tokens == 1200
    assert event.output_tokens == 80


def test_epoch_milliseconds_as_float_keep_sub_millisecond_part() -> None:
    event = decode(call_with(timestamp=NOON_MS + 0.5))
    assert isinstance(event, LlmCall)
    assert event.timestamp == NOON + timedelta(microseconds=500)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", NOON),
        ("2024-05-01T12:00:00+00:00", NOON),
        ("2024-05-01T12:00:00-00:00", NOON),
        ("2024-05-01T14:30:00+02:30", NOON),
        ("2024-05-01T07:00:00-05:00", NOON),
        ("2024-05-02T01:45:00+13:45", NOON),
        ("2024-04-30T23:00:00-13:00", NOON),
        ("2024-05-01T17:30:00.250+05:30", NOON + timedelta(milliseconds=250)),
        ("2024-05-01T12:00:00.123456Z", NOON + timedelta(microseconds=123_456)),
        ("2024-01-01T00:30:00+01:00", datetime(2023, 12, 31, 23, 30, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_are_normalised_to_aware_utc(text: str, expected: datetime) -> None:
    event = decode(call_with(timestamp=text))
    assert isinstance(event, LlmCall)
    assert event.timestamp == expected
    assert event.timestamp.tzinfo == UTC
    assert event.timestamp.utcoffset() == timedelta(0)
    # Same wall-clock fields as the expected UTC instant, not just the same instant.
    assert event.timestamp.replace(tzinfo=None) == expected.replace(tzinfo=None)


def test_defaults_of_an_llm_call() -> None:
    event = decode(CALL)
    assert isinstance(event, LlmCall)
    assert event.kind == "llm_call"
    assert event.task == "default"
    assert event.operation == "chat"
    assert event.status == "ok"
    assert event.variant == "baseline"
    for name in (
        "provider",
        "ttft_ms",
        "cache_read_tokens",
        "cost_usd",
        "error_type",
        "finish_reason",
        "quality",
        "prompt_hash",
        "prompt_tokens_fixed",
        "config_version",
        "request_id",
        "user_id",
        "attributes",
    ):
        assert getattr(event, name) is None, name


def test_explicit_kind_llm_call_and_null_task_give_the_defaults() -> None:
    event = decode(call_with(kind="llm_call", task=None))
    assert isinstance(event, LlmCall)
    assert event.kind == "llm_call"
    assert event.task == "default"


def test_every_optional_field_is_carried_over() -> None:
    full = call_with(
        kind="llm_call",
        task="classify",
        operation="text_completion",
        provider="openai",
        ttft_ms=120.25,
        cache_read_tokens=400,
        cost_usd=0.0012,
        status="error",
        error_type="rate_limited",
        finish_reason="length",
        quality=0.5,
        prompt_hash="abc123",
        prompt_tokens_fixed=900,
        config_version=7,
        variant="canary",
        request_id="req-1",
        user_id="user-1",
        attributes={"region": "eu", "retries": 2, "nested": {"a": [1, 2.5, None]}},
    )
    event = decode(full)
    assert event == LlmCall(
        event_id="evt-1",
        timestamp=NOON,
        app="support",
        model="gpt-4o-mini",
        latency_ms=812.5,
        input_tokens=1200,
        output_tokens=80,
        task="classify",
        operation="text_completion",
        provider="openai",
        ttft_ms=120.25,
        cache_read_tokens=400,
        cost_usd=0.0012,
        status="error",
        error_type="rate_limited",
        finish_reason="length",
        quality=0.5,
        prompt_hash="abc123",
        prompt_tokens_fixed=900,
        config_version=7,
        variant="canary",
        request_id="req-1",
        user_id="user-1",
        attributes={"region": "eu", "retries": 2, "nested": {"a": [1, 2.5, None]}},
    )


@pytest.mark.parametrize(("sent", "kept"), [(1.5, 1.0), (-0.1, 0.0), (1.0000001, 1.0), (0.3, 0.3)])
def test_quality_is_clamped_into_the_unit_interval(sent: float, kept: float) -> None:
    call = decode(call_with(quality=sent))
    assert isinstance(call, LlmCall)
    assert call.quality == kept
    feedback = decode({**FEEDBACK, "quality": sent})
    assert isinstance(feedback, Feedback)
    assert feedback.quality == kept


def test_integer_latency_and_quality_bounds_are_accepted() -> None:
    for quality in (0, 1, 0.0, 1.0):
        event = decode(call_with(latency_ms=0, ttft_ms=0, cost_usd=0, quality=quality))
        assert isinstance(event, LlmCall)
        assert event.latency_ms == 0.0
        assert event.quality == float(quality)


def test_unknown_extra_fields_are_ignored() -> None:
    extra = call_with(
        something_else=1,
        gen_ai={"system": "openai"},
        list_field=[1, 2, 3],
        another=None,
    )
    assert decode(extra) == decode(CALL)
    assert isinstance(decode(extra), LlmCall)


# --- required fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["model", "latency_ms", "input_tokens", "output_tokens", "event_id", "timestamp", "app"],
)
def test_missing_required_field_is_rejected_naming_it(name: str) -> None:
    result = rejected(decode(call_without(name)))
    assert name in result.reason


@pytest.mark.parametrize("name", ["model", "latency_ms", "input_tokens", "output_tokens"])
def test_null_required_llm_call_field_is_rejected_naming_it(name: str) -> None:
    result = rejected(decode(call_with(**{name: None})))
    assert f"$.{name}" in result.reason


def test_all_missing_llm_call_fields_are_named_together() -> None:
    bare = {k: CALL[k] for k in ("event_id", "timestamp", "app")}
    result = rejected(decode(bare))
    for name in ("model", "latency_ms", "input_tokens", "output_tokens"):
        assert f"$.{name}" in result.reason


# --- range and type violations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("latency_ms", -1),
        ("latency_ms", -0.001),
        ("ttft_ms", -5),
        ("input_tokens", -1),
        ("output_tokens", -1),
        ("cache_read_tokens", -1),
        ("prompt_tokens_fixed", -1),
        ("config_version", -1),
        ("cost_usd", -0.01),
        ("quality", "high"),
        ("status", "weird"),
        ("status", "OK"),
        ("variant", "x"),
        ("kind", "other"),
        ("event_id", ""),
        ("app", ""),
        ("model", ""),
        ("task", ""),
        ("operation", ""),
        ("input_tokens", 1.5),
        ("output_tokens", "80"),
        ("latency_ms", "fast"),
        ("latency_ms", True),
        ("event_id", 123),
        ("app", ["support"]),
        ("attributes", [1, 2]),
        ("attributes", "text"),
    ],
)
def test_out_of_range_or_wrong_type_is_rejected_naming_the_field(name: str, value: Any) -> None:
    result = rejected(decode(call_with(**{name: value})))
    assert f"$.{name}" in result.reason


def test_rejection_reason_names_the_rule() -> None:
    assert ">= 0" in rejected(decode(call_with(latency_ms=-1))).reason
    assert "`float | null`" in rejected(decode(call_with(quality="high"))).reason
    reason = rejected(decode(call_with(status="weird"))).reason
    assert "'weird'" in reason


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00",  # naive
        "2024-05-01T12:00:00.123",  # naive with fraction
        "2024-05-01",  # a date only
        "yesterday",
        "",
        "12:00:00Z",
        True,
        False,
        None,
        -1,
        -1.5,
        253_402_300_800_000,  # 10000-01-01: past the end of epoch milliseconds
        10**30,
        1e300,
        [NOON_MS],
        {"ms": NOON_MS},
    ],
)
def test_bad_timestamps_are_rejected_naming_the_field(value: Any) -> None:
    result = rejected(decode(call_with(timestamp=value)))
    assert "timestamp" in result.reason


def test_naive_timestamp_reason_says_offset_is_missing() -> None:
    result = rejected(decode(call_with(timestamp="2024-05-01T12:00:00")))
    assert "offset" in result.reason


def test_huge_json_number_timestamp_is_rejected() -> None:
    body = raw(CALL).replace(b'"2024-05-01T12:00:00Z"', b"1e400")
    assert b"1e400" in body
    result = rejected(decode_event(body))
    assert "timestamp" in result.reason


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",  # in UTC this is year 0
        "9999-12-31T23:59:59-01:00",  # in UTC this is year 10000
    ],
)
def test_rfc3339_timestamp_outside_the_utc_range_is_a_rejection_not_an_exception(
    value: str,
) -> None:
    # decode_event promises never to raise; astimezone(UTC) overflows for these.
    result = rejected(decode(call_with(timestamp=value)))
    assert "timestamp" in result.reason


def test_epoch_limits() -> None:
    assert parse_timestamp(0) == EPOCH
    assert parse_timestamp(0.0) == EPOCH
    assert parse_timestamp(NOON_MS) == NOON
    assert parse_timestamp(NOON_MS + 1) == NOON + timedelta(milliseconds=1)
    for bad in (-1, -0.5, 221_845_392_000_000, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="timestamp"):
            parse_timestamp(bad)


@pytest.mark.parametrize(
    "ms",
    [
        8_590_000_000_119,  # 2242-03-17T07:06:40.119Z
        221_845_391_999_999,  # 8999-12-31T23:59:59.999Z, the largest accepted value
    ],
)
def test_epoch_milliseconds_are_exact_across_the_accepted_range(ms: int) -> None:
    assert parse_timestamp(ms) == EPOCH + timedelta(milliseconds=ms)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=4_102_444_800_000))  # 1970 .. 2100
def test_epoch_milliseconds_are_exact_in_this_century(ms: int) -> None:
    assert parse_timestamp(ms) == EPOCH + timedelta(milliseconds=ms)


def test_parse_timestamp_rejects_naive_and_garbage_strings() -> None:
    with pytest.raises(ValueError, match="offset"):
        parse_timestamp("2024-05-01T12:00:00")
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp("not a time")


@pytest.mark.parametrize("value", [True, False])
def test_parse_timestamp_rejects_bools(value: bool) -> None:
    # A bool is an int in Python; it is not epoch milliseconds.
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(value)


def test_parse_timestamp_returns_utc_for_offsets() -> None:
    parsed = parse_timestamp("2024-05-01T14:00:00+02:00")
    assert parsed == NOON
    assert parsed.tzinfo == UTC


# --- feedback ---------------------------------------------------------------------------------


def test_valid_feedback() -> None:
    event = decode(FEEDBACK)
    assert event == Feedback(
        event_id="fb-1",
        timestamp=datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC),
        app="support",
        request_id="req-9",
        quality=0.75,
    )
    assert isinstance(event, Feedback)
    assert event.kind == "feedback"
    assert event.task is None


def test_feedback_keeps_its_task_and_needs_no_llm_call_fields() -> None:
    event = decode({**FEEDBACK, "task": "classify", "timestamp": NOON_MS})
    assert isinstance(event, Feedback)
    assert event.task == "classify"
    assert event.timestamp == NOON


@pytest.mark.parametrize("name", ["request_id", "quality", "event_id", "app", "timestamp"])
def test_feedback_missing_field_is_rejected_naming_it(name: str) -> None:
    result = rejected(decode({k: v for k, v in FEEDBACK.items() if k != name}))
    assert name in result.reason


@pytest.mark.parametrize(
    ("name", "value"),
    [("request_id", ""), ("request_id", None), ("quality", None), ("quality", "good")],
)
def test_feedback_with_bad_field_is_rejected_naming_it(name: str, value: Any) -> None:
    result = rejected(decode({**FEEDBACK, name: value}))
    assert name in result.reason


# --- not an event at all ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        None,
        b"",
        b"not json",
        b"{",
        b'{"event_id": "x",',
        b"[]",
        b"[1, 2, 3]",
        json.dumps([CALL]).encode(),
        b"null",
        b"42",
        b'"a string"',
        b"true",
        b"{}",
        b"\xff\xfe\x00",
        b"   ",
    ],
)
def test_records_that_are_not_event_objects_are_rejections(body: bytes | None) -> None:
    rejected(decode_event(body))


def test_empty_and_none_say_empty() -> None:
    assert decode_event(b"") == Rejection("empty record")
    assert decode_event(None) == Rejection("empty record")


def test_malformed_json_says_not_json() -> None:
    assert rejected(decode_event(b"{oops")).reason.startswith("not JSON")


def test_json_array_is_rejected_as_not_an_object() -> None:
    reason = rejected(decode_event(b"[1, 2]")).reason
    assert "object" in reason
    assert "array" in reason


# --- encode -----------------------------------------------------------------------------------


def test_encode_writes_rfc3339_utc_and_omits_defaults() -> None:
    event = decode(call_with(timestamp="2024-05-01T14:00:00.5+02:00"))
    assert isinstance(event, LlmCall)
    body = json.loads(encode_event(event))
    stamp = body.pop("timestamp")
    assert stamp.endswith("Z")
    assert stamp.startswith("2024-05-01T12:00:00.5")
    assert parse_timestamp(stamp) == NOON + timedelta(milliseconds=500)
    assert body == {
        "event_id": "evt-1",
        "app": "support",
        "model": "gpt-4o-mini",
        "latency_ms": 812.5,
        "input_tokens": 1200,
        "output_tokens": 80,
    }


def test_encode_feedback_round_trips() -> None:
    event = decode({**FEEDBACK, "task": "t"})
    assert isinstance(event, Feedback)
    body = json.loads(encode_event(event))
    assert body["timestamp"] == "2024-05-01T12:00:05Z"
    # Without "kind" a decoder reads the record as an llm_call and rejects it.
    assert body.get("kind") == "feedback"
    assert decode_event(encode_event(event)) == event


# --- properties -------------------------------------------------------------------------------

ANY_EVENT = (LlmCall, Feedback, Rejection)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
timestamp_values = (
    st.datetimes(timezones=offsets).map(lambda d: d.isoformat())
    | st.datetimes().map(lambda d: d.isoformat())
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_values
)
contract_values = st.one_of(
    json_values,
    st.sampled_from(["llm_call", "feedback", "ok", "error", "baseline", "canary", ""]),
    st.integers(min_value=-5, max_value=10**6),
    st.floats(min_value=-1, max_value=2, allow_nan=False),
)


def _contract_dicts() -> st.SearchStrategy[dict[str, Any]]:
    keyed = st.dictionaries(
        st.sampled_from(CONTRACT_KEYS), contract_values, max_size=len(CONTRACT_KEYS)
    )
    return st.builds(
        lambda base, extra, ts, mutate: {**(base if mutate else {}), **extra, "timestamp": ts},
        st.sampled_from([CALL, FEEDBACK]),
        keyed,
        timestamp_values,
        st.booleans(),
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decode_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    assert isinstance(decode_event(body), ANY_EVENT)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_decode_never_raises_on_arbitrary_json(value: Any) -> None:
    assert isinstance(decode_event(json.dumps(value).encode()), ANY_EVENT)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_contract_dicts())
@example({**CALL, "timestamp": "0001-01-01T00:00:00+01:00"})
@example({**CALL, "timestamp": "9999-12-31T23:59:59-01:00"})
def test_decode_never_raises_on_contract_shaped_dicts(obj: dict[str, Any]) -> None:
    result = decode_event(json.dumps(obj).encode())
    assert isinstance(result, ANY_EVENT)
    if isinstance(result, LlmCall | Feedback):
        assert result.timestamp.utcoffset() == timedelta(0)
        assert result.event_id
        assert result.app


# Within the accepted limits (core.event_limits): no NUL in stored strings, bounded numbers.
_text = st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=30)
names = _text.filter(bool)
opt_text = st.none() | _text
non_neg_float = st.floats(min_value=0, max_value=MAX_DURATION_MS, allow_nan=False)
non_neg_int = st.integers(min_value=0, max_value=MAX_TOKENS)
ms_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(8999, 12, 31, 23, 59, 59)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC))
json_objects = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=10),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=6,
    ),
    max_size=4,
)
llm_calls = st.builds(
    LlmCall,
    event_id=names,
    timestamp=ms_datetimes,
    app=names,
    model=names,
    latency_ms=non_neg_float,
    input_tokens=non_neg_int,
    output_tokens=non_neg_int,
    task=names,
    operation=names,
    provider=opt_text,
    ttft_ms=st.none() | non_neg_float,
    cache_read_tokens=st.none() | non_neg_int,
    cost_usd=st.none() | st.floats(min_value=0, max_value=MAX_COST_USD),
    status=st.sampled_from(["ok", "error"]),
    error_type=opt_text,
    finish_reason=opt_text,
    quality=st.none() | st.floats(min_value=0, max_value=1),
    prompt_hash=opt_text,
    prompt_tokens_fixed=st.none() | non_neg_int,
    config_version=st.none() | st.integers(min_value=0, max_value=MAX_CONFIG_VERSION),
    variant=st.sampled_from(["baseline", "canary"]),
    request_id=opt_text,
    user_id=opt_text,
    attributes=st.none() | json_objects,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(llm_calls)
def test_encode_then_decode_round_trips_an_llm_call(call: LlmCall) -> None:
    decoded = decode_event(encode_event(call))
    assert isinstance(decoded, LlmCall), decoded
    assert decoded == call
    assert decoded.timestamp.tzinfo == UTC
    assert msgspec.structs.asdict(decoded) == msgspec.structs.asdict(call)


@settings(max_examples=100, deadline=None)
@given(
    event_id=names,
    timestamp=ms_datetimes,
    app=names,
    request_id=names,
    quality=st.floats(min_value=0, max_value=1),
    task=st.none() | names,
)
def test_encode_then_decode_round_trips_feedback(
    event_id: str,
    timestamp: datetime,
    app: str,
    request_id: str,
    quality: float,
    task: str | None,
) -> None:
    feedback = Feedback(
        event_id=event_id,
        timestamp=timestamp,
        app=app,
        request_id=request_id,
        quality=quality,
        task=task,
    )
    assert decode_event(encode_event(feedback)) == feedback
