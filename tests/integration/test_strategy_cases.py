"""Caching, rate limiting, batching and prompt changes judged in-process on PostgreSQL.

One good and one bad case of each strategy (:mod:`bench.strategy_cases`, small sizes) run through
the simulated fleet and the optimizer's real operators and actuator until their verdict: the
good change is promoted on a verdict that checked the metric it can hurt, the bad one is rolled
back on that metric (or, for a rate limit that would starve the task, never proposed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest

from bench.strategy_cases import case_settings, run_strategy_case, strategy_cases
from core.settings import Settings
from storage.database import create_db_engine

pytestmark = pytest.mark.integration

# the metric each change can hurt, besides the cost every verdict checks
HURTS = {
    "caching": ("quality",),
    "rate_limiting": ("error_rate", "latency_ms"),
    "batching": ("latency_ms",),
    "prompt_optimization": ("quality",),
}


def _settings() -> Settings:
    s = Settings()
    return s.with_overrides(
        canary=dataclasses.replace(
            s.canary,
            stages=(0.1, 0.5),
            min_samples=50,
            min_stage_duration=timedelta(minutes=1),
            post_promotion_watch=timedelta(minutes=1),
        )
    )


@pytest.mark.parametrize("strategy", sorted(HURTS))
def test_good_change_promoted_bad_change_stopped(
    strategy: str, fresh_database: Callable[[], str]
) -> None:
    engine = create_db_engine(fresh_database())
    good, bad = strategy_cases(1, 2026, (strategy,))
    assert (good.good, bad.good) == (True, False)
    base = _settings()
    won = run_strategy_case(good, case_settings(base, good), engine, max_minutes=30, savings=False)
    lost = run_strategy_case(bad, case_settings(base, bad), engine, max_minutes=20, savings=False)
    engine.dispose()

    assert won.status == "promoted", won.deployment
    assert won.deployment is not None
    passed = [v for v in won.deployment.verdicts if v.outcome == "pass"]
    assert passed, won.deployment.verdicts
    checked = {c.metric: c.passed for c in passed[0].checks}
    for metric in (*HURTS[strategy], "cost_per_success_usd"):
        assert checked.get(metric) is True, (metric, checked)

    if strategy == "rate_limiting":  # the provider's rate is below the task's: any limit starves
        assert (lost.status, lost.proposed) == ("not proposed", 0)
    else:
        assert lost.status == "rolled_back", lost.deployment
        assert set(lost.failed_metrics) & set(HURTS[strategy]), lost.failed_metrics
