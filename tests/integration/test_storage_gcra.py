"""The one GCRA script on the real Redis: all-or-nothing over several limits, leases of 1..n."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis import asyncio as aioredis

from storage.gcra import Cells, Limit, RedisGcra

pytestmark = pytest.mark.integration

# 0.001 cells/s: nothing refills while a test runs, however slow the machine.
SLOW = 0.001


def _take(redis_url: str, steps: list[tuple[list[Limit], int, int]]) -> list[Cells]:
    async def main() -> list[Cells]:
        redis = aioredis.Redis.from_url(redis_url)
        try:
            gcra = RedisGcra(redis)
            return [await gcra.take(limits, want, need) for limits, want, need in steps]
        finally:
            await redis.aclose()

    return asyncio.run(main())


def _elapsed_since(value_us: float, full_us: float) -> bool:
    """``value_us`` is ``full_us`` less the time the test took so far (under a minute)."""
    return full_us - 60e6 <= value_us <= full_us


def _key() -> str:
    return f"llmopt:test:gcra:{uuid.uuid4().hex[:12]}"


def test_all_or_nothing_checks_every_limit_before_charging_any(redis_url: str) -> None:
    source_a, source_b = Limit(_key(), SLOW, 10), Limit(_key(), SLOW, 10)
    overall = Limit(_key(), SLOW, 15)
    found = _take(
        redis_url,
        [
            ([source_a, overall], 8, 8),  # a: 8 of 10, overall: 8 of 15
            ([source_b, overall], 8, 8),  # overall has 7: refused, b not charged
            ([source_b, overall], 7, 7),  # fits both
            ([source_a, overall], 1, 1),  # overall spent
        ],
    )
    assert [(c.granted, c.remaining) for c in found] == [(8, 2), (0, 7), (7, 0), (0, 0)]
    # The refusals say how long until the batch would conform: one cell at 0.001/s is 1,000 s.
    assert _elapsed_since(found[1].retry_us, 1e9)
    assert _elapsed_since(found[3].retry_us, 1e9)
    assert found[0].retry_us == found[2].retry_us == 0.0
    # Reset: until the fullest limit is full again (overall: 8 cells, then 15).
    assert _elapsed_since(found[0].reset_us, 8e9)
    assert _elapsed_since(found[2].reset_us, 15e9)


def test_a_lease_takes_what_is_left_down_to_need(redis_url: str) -> None:
    limit = Limit(_key(), SLOW, 5)
    found = _take(redis_url, [([limit], 3, 1), ([limit], 3, 1), ([limit], 3, 1)])
    assert [(c.granted, c.remaining) for c in found] == [(3, 2), (2, 0), (0, 0)]
    assert _elapsed_since(found[2].retry_us, 1e9)


def test_no_limit_on_grants_everything(redis_url: str) -> None:
    assert _take(redis_url, [([], 4, 4)]) == [Cells(4, 0, 0.0, 0.0)]
