"""Shadow fields of telemetry events: ``shadow_model`` and ``shadow_quality``, both or neither."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest

from core.call_batch import CallBatch
from core.events import Feedback, LlmCall, Rejection, decode_event, decode_records

CALL: dict[str, Any] = {
    "event_id": "e1",
    "timestamp": 1_714_564_800_000,
    "app": "support",
    "model": "big",
    "latency_ms": 10.0,
    "input_tokens": 1,
    "output_tokens": 1,
    "quality": 1.0,
    "request_id": "r1",
}
FEEDBACK: dict[str, Any] = {
    "kind": "feedback",
    "event_id": "f1",
    "timestamp": 1_714_564_801_000,
    "app": "support",
    "request_id": "r1",
    "quality": 0.0,
}


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def test_a_call_carries_its_shadow_model_and_score() -> None:
    event = decode_event(raw({**CALL, "shadow_model": "small", "shadow_quality": 0.25}))
    assert isinstance(event, LlmCall)
    assert (event.shadow_model, event.shadow_quality) == ("small", 0.25)
    plain = decode_event(raw(CALL))
    assert isinstance(plain, LlmCall)
    assert (plain.shadow_model, plain.shadow_quality) == (None, None)


def test_a_shadow_score_outside_0_1_is_clamped_like_quality() -> None:
    event = decode_event(raw({**CALL, "shadow_model": "small", "shadow_quality": 1.5}))
    assert isinstance(event, LlmCall)
    assert event.shadow_quality == 1.0


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"shadow_model": "small"}, "`$.shadow_model` requires `$.shadow_quality`"),
        ({"shadow_quality": 0.5}, "`$.shadow_quality` requires `$.shadow_model`"),
        ({"shadow_model": "", "shadow_quality": 0.5}, "$.shadow_model"),
        ({"shadow_model": "small", "shadow_quality": "x"}, "$.shadow_quality"),
    ],
)
@pytest.mark.parametrize("base", [CALL, FEEDBACK], ids=["llm_call", "feedback"])
def test_one_shadow_field_without_the_other_is_rejected_with_a_reason(
    base: dict[str, Any], extra: dict[str, Any], reason: str
) -> None:
    record = raw({**base, **extra})
    single = decode_event(record)
    assert isinstance(single, Rejection)
    assert reason in single.reason
    # The batch decoder (fast path with valid neighbours) says the same and keeps the others.
    batch = decode_records(
        [raw({**CALL, "event_id": "ok1"}), record, raw({**CALL, "event_id": "ok2"})]
    )
    assert batch.rejected == [(1, single.reason)]
    assert batch.apps["support"].calls.event_id == ["ok1", "ok2"]


def test_feedback_carries_a_delayed_shadow_score() -> None:
    event = decode_event(raw({**FEEDBACK, "shadow_model": "small", "shadow_quality": 0.75}))
    assert isinstance(event, Feedback)
    assert (event.shadow_model, event.shadow_quality) == ("small", 0.75)
    batch = decode_records([raw({**FEEDBACK, "shadow_model": "small", "shadow_quality": 0.75})])
    assert batch.apps["support"].feedback == [event]


def test_batch_columns_hold_shadow_fields_with_nan_where_absent() -> None:
    rng = random.Random(7)
    events = []
    for i in range(200):
        event = {**CALL, "event_id": f"e{i}", "config_version": rng.choice([None, 3, 4])}
        if rng.random() < 0.3:
            event |= {"shadow_model": rng.choice(["s1", "s2"]), "shadow_quality": rng.random()}
        events.append({k: v for k, v in event.items() if v is not None})
    decoded = decode_records([raw(e) for e in events])
    assert decoded.rejected == []
    calls = decoded.apps["support"].calls
    assert calls.has_shadow
    assert calls.shadow_model == [e.get("shadow_model") for e in events]
    assert calls.config_version == [e.get("config_version") for e in events]
    for value, e in zip(calls.shadow_quality.tolist(), events, strict=True):
        expected = e.get("shadow_quality")
        assert math.isnan(value) if expected is None else value == expected
    # The same columns from validated events (the slow path).
    singles = [decode_event(raw(e)) for e in events]
    slow = CallBatch.from_events("support", singles)
    assert slow.shadow_model == calls.shadow_model
    assert slow.config_version == calls.config_version
    np.testing.assert_array_equal(slow.shadow_quality, calls.shadow_quality)


def test_a_batch_without_shadow_fields_says_so() -> None:
    calls = decode_records([raw({**CALL, "event_id": f"e{i}"}) for i in range(5)])
    batch = calls.apps["support"].calls
    assert not batch.has_shadow
    assert np.isnan(batch.shadow_quality).all()
    assert len(batch.shadow_quality) == 5
