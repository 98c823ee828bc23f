"""The override helpers: response cache, token bucket, batcher; telemetry events."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
import redis
from llmopt_client import Batcher, LruCache, RedisCache, TokenBucket, cache_key
from llmopt_client.telemetry import CallRecord, call_event, feedback_event


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cache_key_depends_on_the_key_fields_only() -> None:
    fields = ("model", "prompt")
    a = cache_key("t", {"model": "m", "prompt": "hi", "tenant": "x"}, fields)
    b = cache_key("t", {"model": "m", "prompt": "hi", "tenant": "y"}, fields)
    c = cache_key("t", {"model": "m", "prompt": "hello"}, fields)
    d = cache_key("u", {"model": "m", "prompt": "hi"}, fields)
    assert a == b
    assert len({a, c, d}) == 3
    assert cache_key("t", {"model": "m"}, ("model", "tenant")) != cache_key(
        "t", {"model": "m", "tenant": "x"}, ("model", "tenant")
    )


def test_lru_cache_expires_after_the_ttl_and_evicts_the_least_recently_used() -> None:
    clock = Clock()
    cache = LruCache(max_entries=2, clock=clock)
    cache.set("a", b"1", ttl_s=10)
    cache.set("b", b"2", ttl_s=10)
    assert cache.get("a") == b"1"  # a is now the most recent
    cache.set("c", b"3", ttl_s=10)
    assert (cache.get("b"), cache.get("a"), cache.get("c")) == (None, b"1", b"3")
    clock.now += 10
    assert cache.get("a") is None
    assert (cache.hits, cache.misses, len(cache)) == (3, 2, 1)


def test_redis_cache_shares_answers_with_a_ttl(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        cache = RedisCache(client)
        key = cache_key("redis-test", {"prompt": "x"}, ("prompt",))
        client.delete(key)
        assert cache.get(key) is None
        cache.set(key, b"answer", ttl_s=30)
        assert cache.get(key) == b"answer"
        assert 0 < int(client.pttl(key)) <= 30_000
        client.delete(key)
    finally:
        client.close()


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bucket.delay() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    clock.now += 100  # never more than the burst
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock.now += s

    assert bucket.acquire(sleep=sleep) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=0, burst=1)


def test_batcher_sends_a_full_batch_at_once_and_a_partial_one_after_max_wait() -> None:
    seen: list[list[int]] = []
    release = threading.Event()

    def run(items: Sequence[int]) -> list[int]:
        seen.append(list(items))
        return [i * 10 for i in items]

    full = Batcher(run, max_batch_size=3, max_wait_ms=600_000)  # full batches only, in practice
    futures = [full.submit(i) for i in range(3)]
    assert [f.result(timeout=60) for f in futures] == [0, 10, 20]
    assert seen == [[0, 1, 2]]
    full.close()

    partial = Batcher(run, max_batch_size=100, max_wait_ms=1.0)
    assert partial.submit(7).result(timeout=60) == 70
    partial.close()
    release.set()

    def boom(items: Sequence[int]) -> list[int]:
        raise RuntimeError("provider down")

    failing = Batcher(boom, max_batch_size=2, max_wait_ms=1.0)
    with pytest.raises(RuntimeError, match="provider down"):
        failing.submit(1).result(timeout=60)
    failing.close()


def test_call_and_feedback_events_follow_the_contract() -> None:
    record = CallRecord(
        app="shop", task="classify", request_id="r1", model="m", started_at=0.0,
        latency_ms=1500.0, input_tokens=3, output_tokens=4, variant="canary",
        config_version=8, ttft_ms=200.0,
    )  # fmt: skip
    event = call_event(record)
    assert {k: v for k, v in event.items() if k != "event_id"} == {
        "kind": "llm_call", "timestamp": 1500, "app": "shop",
        "task": "classify", "operation": "chat", "model": "m", "latency_ms": 1500.0,
        "input_tokens": 3, "output_tokens": 4, "status": "ok", "variant": "canary",
        "request_id": "r1", "config_version": 8, "ttft_ms": 200.0,
    }  # fmt: skip
    fb = feedback_event("shop", "r1", 0.5, shadow_model="m2", shadow_quality=1.0, at=0.0)
    assert {k: v for k, v in fb.items() if k != "event_id"} == {
        "kind": "feedback", "timestamp": 0, "app": "shop",
        "request_id": "r1", "quality": 0.5, "shadow_model": "m2", "shadow_quality": 1.0,
    }  # fmt: skip


def test_rest_reporter_keeps_a_bounded_buffer_while_the_api_is_unreachable() -> None:
    import socket

    import httpx
    from llmopt_client import RestReporter

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
    reporter = RestReporter(http, {}, batch=2, interval=3600, max_buffer=3)
    for i in range(5):
        reporter.emit({"i": i})
    assert not reporter.flush(timeout=1.0)  # nothing can be delivered
    assert reporter.failures >= 1
    assert reporter.sent == 0
    assert reporter.dropped == 2  # the two oldest: the buffer holds three
    reporter.close(timeout=0.5)
    http.close()
