"""The shared GCRA limiter's leases on a real Redis: exact for quiet keys, one limit for all."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from api.service.rate_limit import RedisRateLimiter

pytestmark = pytest.mark.integration


class Clock:
    """A monotonic clock the test moves (leases expire by it; Redis keeps its own time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limiter(redis_url: str, prefix: str, clock: Clock | None = None) -> RedisRateLimiter:
    return RedisRateLimiter(redis_url, prefix, clock=clock or Clock())


def test_a_quiet_key_is_decided_by_redis_on_every_request(redis_url: str) -> None:
    async def run() -> None:
        prefix = f"llmopt:test:{uuid.uuid4().hex[:8]}"
        a, b = _limiter(redis_url, prefix), _limiter(redis_url, prefix)
        answers = [await (a if i % 2 else b).hit("k", 0.5, 4) for i in range(6)]
        assert [d.allowed for d in answers] == [True] * 4 + [False] * 2
        assert [d.remaining for d in answers] == [3, 2, 1, 0, 0, 0]
        assert 1.0 < answers[-1].retry_after_s <= 2.0
        assert (a.round_trips, b.round_trips) == (3, 3)
        await a.close()
        await b.close()

    asyncio.run(run())


def test_a_busy_key_takes_leases_and_never_exceeds_the_shared_limit(redis_url: str) -> None:
    async def run() -> None:
        prefix = f"llmopt:test:{uuid.uuid4().hex[:8]}"
        clock = Clock()
        replicas = [_limiter(redis_url, prefix, clock) for _ in range(3)]
        # The key may use its burst of 500 and the cells Redis's own clock adds while the test
        # runs (1000/s), never more, however the replicas share it.
        allowed = trips_while_allowed = 0
        started = time.monotonic()
        for i in range(1500):
            decision = await replicas[i % 3].hit("busy", 1000.0, 500)
            allowed += decision.allowed
            if not decision.allowed and not trips_while_allowed:
                trips_while_allowed = sum(r.round_trips for r in replicas)
            if i % 10 == 0:
                clock.now += 0.001  # 10 requests per ms, on the replicas' clock
        elapsed = time.monotonic() - started
        assert 500 <= allowed <= 500 + 1000 * elapsed + 1
        # Leases: far fewer round trips than allowed requests.
        assert 0 < trips_while_allowed < 500 / 4
        for r in replicas:
            await r.close()

    asyncio.run(run())


def test_a_lease_expires_and_its_unspent_cells_are_forfeited(redis_url: str) -> None:
    async def run() -> None:
        prefix = f"llmopt:test:{uuid.uuid4().hex[:8]}"
        clock = Clock()
        limiter = _limiter(redis_url, prefix, clock)
        for _ in range(200):  # ramp up: the lease size follows the local request rate
            assert (await limiter.hit("k", 10_000.0, 10_000)).allowed
            clock.now += 0.0001
        trips = limiter.round_trips
        assert trips < 60
        clock.now += 1.0  # the lease ended: the next request must ask Redis again
        assert (await limiter.hit("k", 10_000.0, 10_000)).allowed
        assert limiter.round_trips == trips + 1
        await limiter.close()

    asyncio.run(run())


def test_a_refusal_is_remembered_until_retry_after(redis_url: str) -> None:
    async def run() -> None:
        prefix = f"llmopt:test:{uuid.uuid4().hex[:8]}"
        clock = Clock()
        limiter = _limiter(redis_url, prefix, clock)
        assert (await limiter.hit("k", 0.5, 1)).allowed
        refused = await limiter.hit("k", 0.5, 1)
        assert not refused.allowed
        trips = limiter.round_trips
        for _ in range(20):
            again = await limiter.hit("k", 0.5, 1)
            assert not again.allowed
            assert 0 < again.retry_after_s <= refused.retry_after_s + 1e-9
        assert limiter.round_trips == trips  # answered here, not by Redis
        await limiter.close()

    asyncio.run(run())


def test_concurrent_requests_share_one_renewal(redis_url: str) -> None:
    async def run() -> None:
        prefix = f"llmopt:test:{uuid.uuid4().hex[:8]}"
        limiter = _limiter(redis_url, prefix)
        first = await asyncio.gather(*(limiter.hit("k", 0.5, 3) for _ in range(10)))
        assert sum(d.allowed for d in first) == 3
        assert limiter.round_trips <= 4  # three grants and one refusal, not ten scripts
        await limiter.close()

    asyncio.run(run())


def test_redis_down_fails_open() -> None:
    async def run() -> None:
        limiter = RedisRateLimiter("redis://127.0.0.1:1/0", "llmopt:test:down")
        decision = await limiter.hit("k", 1.0, 5)
        assert decision.allowed
        assert decision.remaining == 5
        await limiter.close()

    asyncio.run(run())
