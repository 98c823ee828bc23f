"""Collector rate limits change on a settings reload, without a restart, keeping what was used."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path

from collector.rate_limit import RateLimiter
from storage.gcra import Gcra


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_gcra_reconfigure_carries_used_events_over_at_the_new_rate() -> None:
    limit = Gcra(rate=10, burst=5)
    limit.take("a", 5, 0.0)  # the whole burst: 5 outstanding events
    assert math.isclose(limit.wait("a", 1, 0.0), 0.1)
    limit.reconfigure(rate=100, burst=5, now=0.0)  # 5 events at 1/100 s each
    assert math.isclose(limit.wait("a", 1, 0.0), 0.01)
    assert limit.wait("b", 5, 0.0) == 0.0
    limit.reconfigure(rate=100, burst=10, now=0.0)  # a larger burst admits 5 more at once
    assert limit.wait("a", 5, 0.0) == 0.0
    assert math.isclose(limit.wait("a", 6, 0.0), 0.01)
    assert limit.burst == 10


def test_gcra_reconfigure_off_and_on_again_starts_with_a_full_burst() -> None:
    limit = Gcra(rate=1, burst=1)
    limit.take("a", 1, 0.0)
    assert limit.wait("a", 1, 0.0) == 1.0
    limit.reconfigure(rate=0, burst=1, now=0.0)
    assert limit.unlimited
    assert limit.wait("a", 10**6, 0.0) == 0.0
    limit.reconfigure(rate=2, burst=3, now=0.0)
    assert limit.wait("a", 3, 0.0) == 0.0
    assert limit.wait("a", 4, 0.0) == math.inf


def test_rate_limiter_reconfigure_changes_both_limits_and_the_bursts() -> None:
    clock = Clock()
    limiter = RateLimiter(10, 10, 0, 1, clock=clock)
    assert limiter.bursts == [10]
    assert limiter.acquire("a", 10) == 0.0
    assert math.isclose(limiter.acquire("a", 1), 0.1)
    clock.now = 1.0  # the source has recovered 10 events by now
    limiter.reconfigure(source_rate=1, source_burst=2, global_rate=5, global_burst=4)
    assert limiter.bursts == [2, 4]
    assert limiter.acquire("a", 3) == math.inf  # beyond the new source burst
    assert limiter.acquire("a", 2) == 0.0
    assert math.isclose(limiter.acquire("a", 1), 1.0)  # 1 event/s per source now
    assert limiter.acquire("b", 2) == 0.0  # global: 4 of 4 used
    assert math.isclose(limiter.acquire("c", 1), 0.2)  # 5 events/s over all sources


def test_ingest_reload_applies_new_limits_to_the_running_pipeline(tmp_path: Path) -> None:
    import pytest

    from collector.pipeline import Source, TelemetryIngest
    from core.errors import OverloadedError, ValidationError
    from core.settings import Settings

    settings = Settings()
    data = dataclasses.replace(Settings().storage, data_dir=str(tmp_path))
    settings = settings.with_overrides(
        storage=data,
        kafka=dataclasses.replace(settings.kafka, bootstrap_servers="127.0.0.1:9"),
        collector=dataclasses.replace(
            settings.collector, source_rate=1000.0, source_burst=100, global_rate=0.0
        ),
    )
    ingest = TelemetryIngest(settings)

    def admit(source: Source, n: int) -> None:
        asyncio.run(ingest._admit(source, n))

    source = Source("rest", "key:a")
    admit(source, 100)  # within the burst of 100
    tighter = settings.with_overrides(
        collector=dataclasses.replace(settings.collector, source_rate=0.5, source_burst=10)
    )
    ingest.reload(tighter)
    with pytest.raises(ValidationError, match=r"exceeds the rate-limit burst \(10\)"):
        admit(source, 11)
    with pytest.raises(OverloadedError) as refused:
        admit(source, 1)  # 100 events used at 1/1000 s = 0.1 s → 100 · 2 s now
    assert refused.value.retry_after > 150
    admit(Source("rest", "key:b"), 10)
    ingest.reload(
        settings.with_overrides(collector=dataclasses.replace(settings.collector, source_rate=0.0))
    )
    admit(source, 10_000)  # limit off
