"""Canary controller and rollback engine on real PostgreSQL, period by period."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np
import pytest
from sqlalchemy import Engine

from core.app_config import TaskConfig
from core.decisions import Decision, ExpectedImpact, stable_id
from core.errors import ValidationError
from core.settings import CanarySettings
from operators.judge import SideSummary
from sinks.canary_controller import approve_decision, reject_decision, start_canary
from sinks.canary_stages import observe
from sinks.config_manager import ConfigManager
from sinks.rollback import rollback_deployment
from storage.configs import active_config
from storage.database import create_db_engine, session_scope
from storage.decisions import get_decision, get_deployment, save_decision
from storage.outbox import list_outbox

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PERIOD = timedelta(minutes=1)
CANARY = CanarySettings(
    min_stage_duration=timedelta(minutes=2),
    min_samples=100,
    post_promotion_watch=timedelta(minutes=3),
)


@pytest.fixture
def engine(fresh_database: Callable[[], str]) -> Iterator[Engine]:
    engine = create_db_engine(fresh_database())
    yield engine
    engine.dispose()


def _decision(strategy_action: dict[str, object] | None = None) -> Decision:
    return Decision(
        id=stable_id("decision", "shop", "classify"),
        created_at=T0,
        app="shop",
        task="classify",
        strategy="model_selection",
        action=strategy_action or {"model": "small"},
        rationale="small is 5x cheaper",
        expected_impact=ExpectedImpact(cost_change_pct=-80.0),
        confidence=0.9,
    )


def _side(seed: int, n: int, quality: float = 0.85) -> SideSummary:
    rng = np.random.default_rng(seed)
    return SideSummary(
        calls=n,
        errors=0,
        cost_usd=0.001 * n,
        latency=tuple(rng.lognormal(6.0, 0.3, n).tolist()),
        quality=tuple(np.clip(rng.normal(quality, 0.05, n), 0, 1).tolist()),
        quality_count=n,
    )


def _setup(engine: Engine) -> ConfigManager:
    manager = ConfigManager(engine, clock=lambda: T0 - timedelta(hours=1))
    manager.update(
        "shop",
        {"classify": TaskConfig(model="big"), "other": TaskConfig(model="x")},
        author="alice",
        reason="initial",
    )
    return manager


def _run_periods(engine: Engine, start: int, count: int, canary_quality: float) -> list[str]:
    outcomes = []
    for i in range(start, start + count):
        with session_scope(engine) as s:
            deployment = get_deployment(s, stable_id("deployment", _decision().id))
            verdict = observe(
                s,
                deployment,
                window_start=T0 + i * PERIOD,
                window_end=T0 + (i + 1) * PERIOD,
                baseline=_side(2 * i, 300),
                canary=_side(2 * i + 1, 150, canary_quality),
                settings=CANARY,
            )
            outcomes.append("none" if verdict is None else verdict.outcome)
    return outcomes


def test_good_canary_walks_every_stage_is_promoted_and_watched(engine: Engine) -> None:
    manager = _setup(engine)
    with session_scope(engine) as s:
        deployment = start_canary(s, _decision(), settings=CANARY, now=T0)
        again = start_canary(s, _decision(), settings=CANARY, now=T0 + PERIOD)
    assert again == deployment
    active = manager.active("shop")
    assert active.version == 2
    canary = active.tasks["classify"].canary
    assert canary is not None
    assert (canary.version, canary.weight, canary.overrides) == (2, 0.01, {"model": "small"})
    outcomes = _run_periods(engine, 0, 16, 0.85)
    with session_scope(engine) as s:
        done = get_deployment(s, deployment.id)
        decision = get_decision(s, deployment.decision_id)
        config = active_config(s, "shop")
    assert done.status == "promoted", outcomes
    assert decision.status == "promoted"
    assert config is not None
    assert config.tasks["classify"] == TaskConfig(model="small")
    assert config.tasks["other"] == TaskConfig(model="x")
    weights = sorted({v.weight for v in done.verdicts})
    assert weights == [0.01, 0.05, 0.25, 0.5, 1.0]
    assert all(v.outcome == "pass" for v in done.verdicts)
    assert {c.metric for c in done.verdicts[-1].checks} >= {"latency_ms", "quality", "error_rate"}
    # replaying a period writes nothing twice
    before = len(done.verdicts)
    assert _run_periods(engine, 3, 1, 0.85) == ["none"]
    with session_scope(engine) as s:
        assert len(get_deployment(s, deployment.id).verdicts) == before


def test_worse_canary_is_rolled_back_at_the_first_stage_with_its_reason(engine: Engine) -> None:
    manager = _setup(engine)
    with session_scope(engine) as s:
        deployment = start_canary(s, _decision(), settings=CANARY, now=T0)
    outcomes = _run_periods(engine, 0, 3, 0.70)
    assert outcomes[-1] == "fail" or "fail" in outcomes
    with session_scope(engine) as s:
        done = get_deployment(s, deployment.id)
        events = [e.event_type for e in list_outbox(s)]
    assert done.status == "rolled_back"
    assert done.weight == 0.01
    assert "quality" in done.reason
    config = manager.active("shop")
    assert config.tasks["classify"] == TaskConfig(model="big")
    assert "rollback" in events
    assert "verdict" in events


def test_manual_rollback_approve_and_reject(engine: Engine) -> None:
    _setup(engine)
    with session_scope(engine) as s:
        save_decision(s, _decision(), now=T0)
        approve_decision(s, _decision().id, actor="op", settings=CANARY, now=T0)
        with pytest.raises(ValidationError, match="not proposed"):
            reject_decision(s, _decision().id, actor="op", reason="no", now=T0)
        deployment_id = stable_id("deployment", _decision().id)
        rolled, version = rollback_deployment(
            s, deployment_id, actor="op", reason="manual", now=T0 + PERIOD
        )
        again, none = rollback_deployment(
            s, deployment_id, actor="op", reason="manual", now=T0 + PERIOD
        )
    assert rolled.status == "rolled_back"
    assert version is not None
    assert version.tasks["classify"] == TaskConfig(model="big")
    assert again.status == "rolled_back"
    assert none is None


def test_invalid_action_writes_nothing(engine: Engine) -> None:
    manager = _setup(engine)
    with pytest.raises(ValidationError), session_scope(engine) as s:
        start_canary(s, _decision({"modle": "x"}), settings=CANARY, now=T0)
    assert manager.active("shop").version == 1


def test_the_decisions_rollback_plan_rolls_back_what_the_judge_lets_pass(engine: Engine) -> None:
    from core.decisions import RollbackLimit

    manager = _setup(engine)
    planned = msgspec.structs.replace(
        _decision(), rollback_plan=(RollbackLimit(metric="latency_p95_ms", limit=300.0),)
    )
    with session_scope(engine) as s:
        deployment = start_canary(s, planned, settings=CANARY, now=T0)
    assert _run_periods(engine, 0, 1, 0.85) == ["fail"]
    with session_scope(engine) as s:
        done = get_deployment(s, deployment.id)
    assert done.status == "rolled_back"
    assert done.reason.startswith("verdict fail at 1%: rollback plan: plan:latency_p95_ms")
    check = next(c for c in done.verdicts[0].checks if c.metric == "plan:latency_p95_ms")
    assert check.threshold == 300.0
    assert check.p_value is not None
    assert manager.active("shop").tasks["classify"] == TaskConfig(model="big")


def _promote(engine: Engine) -> tuple[str, int]:
    """Walk a good canary to promotion; returns the deployment id and the next period."""
    with session_scope(engine) as s:
        deployment = start_canary(s, _decision(), settings=CANARY, now=T0)
    for i in range(30):
        _run_periods(engine, i, 1, 0.85)
        with session_scope(engine) as s:
            if get_deployment(s, deployment.id).status == "watching":
                return deployment.id, i + 1
    raise AssertionError("never promoted")


def _slow(seed: int, n: int, factor: float) -> SideSummary:
    side = _side(seed, n)
    return msgspec.structs.replace(side, latency=tuple(v * factor for v in side.latency))


def _watch(engine: Engine, deployment_id: str, period: int, promoted: float, holdback: float):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        deployment = get_deployment(s, deployment_id)
        return observe(
            s,
            deployment,
            window_start=T0 + period * PERIOD,
            window_end=T0 + (period + 1) * PERIOD,
            baseline=_slow(1000 + period, 300, promoted),
            canary=_slow(2000 + period, 150, holdback),
            settings=CANARY,
        )


def test_while_watched_a_holdback_keeps_the_old_config_as_a_concurrent_control(
    engine: Engine,
) -> None:
    manager = _setup(engine)
    deployment_id, period = _promote(engine)
    holdback = manager.active("shop").tasks["classify"].canary
    assert holdback is not None
    assert (holdback.role, holdback.weight, holdback.overrides) == (
        "holdback",
        0.05,
        {"model": "big"},
    )
    # a provider incident slows both sides alike: not the change's fault
    verdict = _watch(engine, deployment_id, period, promoted=2.0, holdback=2.0)
    assert verdict is not None
    assert verdict.outcome == "pass"
    assert verdict.reason.endswith("(promoted config against the holdback)")
    # the promoted config alone regresses: rolled back
    verdict = _watch(engine, deployment_id, period + 1, promoted=3.0, holdback=1.0)
    assert verdict is not None
    assert verdict.outcome == "fail"
    with session_scope(engine) as s:
        done = get_deployment(s, deployment_id)
    assert done.status == "rolled_back"
    assert done.reason.startswith("verdict fail after promotion")
    assert manager.active("shop").tasks["classify"] == TaskConfig(model="big")
