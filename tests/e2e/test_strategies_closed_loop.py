"""Every strategy through the real stack in one run: each one an app of one simulated fleet.

Kafka (the tansu fixture) → the processor (``python -m bytewax.run flows.main``, as the
orchestrator runs it) → PostgreSQL → each app's config read over REST through the client SDK →
the simulated apps serve their calls with it (the simulator applies each override's effect) →
the canary judge's verdict. One processor and one simulation carry every app, so the test costs
one closed loop, not one per strategy; the apps are independent (own tasks, own rollouts).

The fleet (:mod:`tests.e2e.strategy_fleet`, with how often its verdicts hold over seeds): apps
whose change pays (promoted, served, cheaper), apps whose change hurts the metric it can hurt
(rolled back, the app back on what it served, the reason naming that metric), and one
look-alike app where no strategy may propose anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select

from core.app_config import TaskConfig, apply_overrides
from core.decisions import Decision, Deployment
from storage.database import create_db_engine, session_scope
from storage.decisions import get_deployment, list_decisions, list_deployments
from storage.models import WindowRow
from tests.e2e.strategy_fleet import (
    APPS,
    CASES,
    DONE,
    LOOK_ALIKE,
    MINI,
    TASK,
    Case,
    fleet_settings,
    strategy_fleet,
)
from tests.e2e.test_closed_loop import PERIOD, Loop, _settings, rest_loop

pytestmark = pytest.mark.e2e


def _rate_limited_share(loop: Loop, app: str, since: Any, until: Any) -> float:
    with session_scope(loop.engine) as s:
        rows = s.execute(
            select(WindowRow.errors_by_type, WindowRow.count).where(
                WindowRow.kind == "tumbling", WindowRow.app == app,
                WindowRow.window_start >= since, WindowRow.window_start < until,
            )
        ).all()  # fmt: skip
    return sum(e.get("rate_limited", 0) for e, _ in rows) / sum(n for _, n in rows)


@dataclasses.dataclass
class Run:
    loop: Loop
    deployments: dict[str, Deployment]
    decisions: dict[str, list[Decision]]
    configs: dict[str, Any]


def _cost_per_call(loop: Loop, app: str, since: Any, until: Any) -> float:
    with session_scope(loop.engine) as s:
        cost, calls = s.execute(
            select(func.sum(WindowRow.cost_usd), func.sum(WindowRow.count)).where(
                WindowRow.kind == "tumbling", WindowRow.app == app,
                WindowRow.window_start >= since, WindowRow.window_start < until,
            )
        ).one()  # fmt: skip
    return float(cost) / int(calls)


def _run(kafka_bootstrap: str, topics: dict[str, str], url: str, redis_url: str, tmp: Path) -> Run:
    """The fleet against one processor until every case's rollout ended (at most 50 min)."""
    engine = create_db_engine(url)
    base = _settings(kafka_bootstrap, topics, url, tmp, timedelta(minutes=2))
    settings = fleet_settings(base).with_overrides(
        storage=dataclasses.replace(base.storage, redis_url=redis_url)
    )
    scenario = strategy_fleet(seed=23)
    with rest_loop(settings, engine, scenario, topics, hours_back=2.0) as (loop, source):

        def settled(_now: Any) -> bool:
            with session_scope(engine) as s:
                found, _ = list_deployments(s, status=list(DONE), limit=100)
            return {d.app for d in found} >= {app for app, c in CASES.items() if c.settles}

        loop.sim.run_until(loop.sim.now + timedelta(minutes=50), stop=settled)
        loop.sim.run_for(3 * PERIOD)  # the apps apply the last configs a little later
        configs = {app: source.config(app) for app in APPS}
    with session_scope(engine) as s:
        found, _ = list_deployments(s, limit=100)
        deployments = {d.app: get_deployment(s, d.id) for d in found}
        decisions = {app: list_decisions(s, app=app).items for app in APPS}
    return Run(loop, {k: v for k, v in deployments.items() if v is not None}, decisions, configs)


def test_every_strategy_through_the_real_stack(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fresh_database: Callable[[], str],
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Each case is proposed by its strategy and ends as its truth calls for; the look-alike
    gets nothing."""
    run = _run(kafka_bootstrap, topics, fresh_database(), redis_url, tmp_path)
    try:
        for app, case in sorted(CASES.items()):
            _assert_case(run, app, case)
        assert run.decisions[LOOK_ALIKE.app] == []
        assert run.configs[LOOK_ALIKE.app].version == 1  # the seeded config, never changed
    finally:
        run.loop.engine.dispose()


def _assert_case(run: Run, app: str, case: Case) -> None:
    (decision,) = run.decisions[app]
    assert decision.strategy == case.strategy, (app, decision)
    assert case.ends(decision.status), (app, decision.status)
    done = run.deployments[app]
    weights = [v.weight for v in done.verdicts]
    assert weights == sorted(weights), (app, weights)
    served = msgspec.to_builtins(run.configs[app].tasks[TASK])
    changed = msgspec.to_builtins(apply_overrides(TaskConfig(model=MINI), decision.action))
    seeded = msgspec.to_builtins(TaskConfig(model=MINI))
    if decision.status != "promoted":  # the app's baseline serves what it served before
        assert {k: served[k] for k in decision.action} == {k: seeded[k] for k in decision.action}
        if done.status == "rolled_back":  # and the rollback says why
            assert case.because in done.reason, (app, done.reason)
        return
    # the app serves the promoted change (its config over REST: the seeded one plus the action)
    assert {k: served[k] for k in decision.action} == {k: changed[k] for k in decision.action}
    now = run.loop.sim.now
    if case.strategy == "rate_limiting":  # it pays in 429s, not in cost
        before = _rate_limited_share(run.loop, app, run.loop.start, done.started_at)
        after = _rate_limited_share(run.loop, app, now - 3 * PERIOD, now)
        assert after < 0.5 * before, (app, before, after)
        return
    before = _cost_per_call(run.loop, app, run.loop.start, done.started_at)
    after = _cost_per_call(run.loop, app, now - 2 * PERIOD, now)
    assert after < 0.8 * before, (app, before, after)
