"""The in-process GCRA of embedded mode (`api/service/rate_limit.py`, MemoryRateLimiter)."""

from __future__ import annotations

import asyncio

from api.service.rate_limit import MemoryRateLimiter


def test_a_fresh_key_gets_its_whole_burst_then_waits() -> None:
    """Exactly at the limit the GCRA sums round either side of 0; a fresh key must never be
    refused its burst (with a burst of 1 this refused some first requests)."""

    async def run() -> None:
        limiter = MemoryRateLimiter()
        for i in range(3000):
            first = await limiter.hit(f"k{i}", 0.001, 1)
            assert first.allowed, i
            assert first.remaining == 0
            second = await limiter.hit(f"k{i}", 0.001, 1)
            assert not second.allowed
            assert 999 < second.retry_after_s <= 1000
        burst = [await limiter.hit("b", 10.0, 5) for _ in range(6)]
        assert [d.allowed for d in burst] == [True] * 5 + [False]
        assert [d.remaining for d in burst[:5]] == [4, 3, 2, 1, 0]

    asyncio.run(run())
