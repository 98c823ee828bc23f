"""decode_records (the processor's columnar decoder) agrees with decode_event record by record."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from core.events import Feedback, LlmCall, Rejection, decode_event, decode_records

T0 = datetime(2026, 2, 1, tzinfo=UTC)


def _call(i: int, rng: random.Random, presence: float = 0.3) -> dict[str, Any]:
    at = T0 + timedelta(milliseconds=rng.randint(0, 10**7))
    event: dict[str, Any] = {
        "event_id": f"e{i}",
        "timestamp": int(at.timestamp() * 1000) if rng.random() < 0.7 else at.isoformat(),
        "app": rng.choice(["a", "b", "c"]),
        "task": rng.choice(["t1", "t2", None]),
        "model": rng.choice(["gpt-4o-mini", "m2"]),
        "latency_ms": rng.uniform(0, 5000),
        "input_tokens": rng.randint(0, 5000),
        "output_tokens": rng.randint(0, 500),
    }
    for name, value in (
        ("ttft_ms", rng.uniform(0, 100)),
        ("quality", rng.uniform(-0.5, 1.5)),
        ("cost_usd", rng.uniform(0, 1)),
        ("cache_read_tokens", rng.randint(0, 100)),
        ("prompt_tokens_fixed", rng.randint(0, 100)),
        ("status", "error"),
        ("error_type", rng.choice(["timeout", None])),
        ("prompt_hash", rng.choice(["p1", "p2"])),
        ("request_id", f"r{i}"),
        ("variant", "canary"),
        ("provider", "openai"),
    ):
        if rng.random() < presence:
            event[name] = value
    return {k: v for k, v in event.items() if v is not None}


BAD = [
    b"not json",
    b"",
    b'{"event_id": "x", "timestamp": 1, "app": "a"}',
    b'{"event_id": "x", "timestamp": "2026-01-01T00:00:00", "app": "a", "model": "m", '
    b'"latency_ms": 1, "input_tokens": 1, "output_tokens": 1}',
    b'{"event_id": "x", "timestamp": -5, "app": "a", "model": "m", "latency_ms": 1, '
    b'"input_tokens": 1, "output_tokens": 1}',
    b'{"a": 1},{"b": 2}',
]


def _records(
    seed: int, bad: int, feedback: bool, count: int = 300, presence: float = 0.3
) -> list[bytes]:
    rng = random.Random(seed)
    out = [json.dumps(_call(i, rng, presence)).encode() for i in range(count)]
    if feedback:
        for i in range(0, 300, 37):
            out.insert(
                i,
                json.dumps(
                    {
                        "kind": "feedback",
                        "event_id": f"f{i}",
                        "app": "a",
                        "request_id": f"r{i}",
                        "quality": 0.5,
                        "timestamp": T0.isoformat(),
                    }
                ).encode(),
            )
    for j in range(bad):
        out.insert(rng.randint(0, len(out)), BAD[j % len(BAD)])
    return out


@pytest.mark.parametrize(
    ("seed", "bad", "feedback", "count", "presence"),
    [
        (1, 0, False, 300, 0.3),
        (2, 0, True, 300, 0.3),
        (3, 1, True, 300, 0.3),
        (4, 6, False, 300, 0.3),
        (5, 4, True, 300, 0.3),
        # Optional fields that no call of the batch has, or every call has (columns filled at
        # once, or converted), and batches of one and two records (the brackets of the join).
        (6, 0, False, 300, 0.0),
        (7, 0, False, 300, 1.0),
        (8, 0, False, 1, 0.5),
        (9, 0, False, 2, 0.5),
    ],
)
def test_same_events_and_reasons_as_decode_event(
    seed: int, bad: int, feedback: bool, count: int, presence: float
) -> None:
    records = _records(seed, bad, feedback, count, presence)
    decoded = decode_records(records)
    singles = [decode_event(r) for r in records]
    assert decoded.rejected == [
        (i, r.reason) for i, r in enumerate(singles) if isinstance(r, Rejection)
    ]
    for app in {e.app for e in singles if not isinstance(e, Rejection)}:
        calls = [e for e in singles if isinstance(e, LlmCall) and e.app == app]
        feedbacks = [e for e in singles if isinstance(e, Feedback) and e.app == app]
        got = decoded.apps[app]
        assert got.feedback == feedbacks
        batch = got.calls
        assert batch.event_id == [c.event_id for c in calls]
        assert batch.ts.tolist() == [round(c.timestamp.timestamp() * 1000) for c in calls]
        assert batch.task == [c.task for c in calls]
        assert batch.model == [c.model for c in calls]
        assert batch.variant == [c.variant for c in calls]
        assert batch.provider == [c.provider for c in calls]
        assert batch.request_id == [c.request_id for c in calls]
        np.testing.assert_array_equal(batch.latency, [c.latency_ms for c in calls])
        np.testing.assert_array_equal(
            batch.quality, [np.nan if c.quality is None else c.quality for c in calls]
        )
        np.testing.assert_array_equal(
            batch.cost, [np.nan if c.cost_usd is None else c.cost_usd for c in calls]
        )
        np.testing.assert_array_equal(
            batch.ttft, [np.nan if c.ttft_ms is None else c.ttft_ms for c in calls]
        )
        assert batch.fixed_tokens.tolist() == [
            -1 if c.prompt_tokens_fixed is None else c.prompt_tokens_fixed for c in calls
        ]
        assert batch.ok.tolist() == [c.status == "ok" for c in calls]
        assert batch.tokens.tolist() == [
            [c.input_tokens, c.output_tokens, c.cache_read_tokens or 0] for c in calls
        ]
    assert set(decoded.apps) == {e.app for e in singles if not isinstance(e, Rejection)}


def test_quality_is_clamped_in_columns_too() -> None:
    raw = json.dumps(
        {
            "event_id": "q",
            "timestamp": 1,
            "app": "a",
            "model": "m",
            "latency_ms": 1,
            "input_tokens": 1,
            "output_tokens": 1,
            "quality": 1.7,
        }
    ).encode()
    assert decode_records([raw]).apps["a"].calls.quality.tolist() == [1.0]


def test_events_beyond_the_clock_skew_are_rejected_naming_the_setting() -> None:
    now_ms = 1_767_225_600_000
    ok = {
        "event_id": "ok",
        "timestamp": now_ms,
        "app": "a",
        "model": "m",
        "latency_ms": 1,
        "input_tokens": 1,
        "output_tokens": 1,
    }
    future = {**ok, "event_id": "future", "timestamp": now_ms + 7_200_000}
    future_text = {**future, "event_id": "future-rfc", "timestamp": "2099-01-01T00:00:00Z"}
    records = [json.dumps(e).encode() for e in (ok, future, future_text)]
    for batch in (records, [*records, b"junk"]):  # the fast path and the per-record path
        decoded = decode_records(batch, latest_ms=now_ms + 3_600_000)
        assert decoded.apps["a"].calls.event_id == ["ok"]
        reasons = dict(decoded.rejected)
        assert "3600s beyond the accepted clock skew (processor.max_clock_skew)" in reasons[1]
        assert "2099-01-01" in reasons[2]
    assert decode_records(records).apps["a"].calls.event_id == ["ok", "future", "future-rfc"]
