"""Canary controller and rollback engine on real PostgreSQL, period by period, from real windows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np
import pytest
from sqlalchemy import Engine

from core.app_config import ShadowConfig, TaskConfig
from core.decisions import Decision, ExpectedImpact, RollbackLimit, Verdict, stable_id
from core.errors import ValidationError
from core.settings import CanarySettings
from core.stats import WindowStats
from rollout.canary_controller import approve_decision, reject_decision, start_canary
from rollout.config_manager import ConfigManager
from rollout.rollback import rollback_deployment
from rollout.stages import observe
from storage.configs import active_config
from storage.database import create_db_engine, session_scope
from storage.decisions import get_decision, get_deployment, save_decision
from storage.outbox import list_outbox
from tests.side_samples import window

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
PERIOD = timedelta(minutes=1)
TOL = 0.02
CANARY = CanarySettings(
    min_stage_duration=timedelta(minutes=2),
    min_samples=100,
    post_promotion_watch=timedelta(minutes=3),
    max_rollout_duration=timedelta(hours=2),
)
CANARY_VERSION = 2  # the initial config is version 1; the canary's publication is 2


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


def _setup(engine: Engine) -> ConfigManager:
    manager = ConfigManager(engine, clock=lambda: T0 - timedelta(hours=1))
    manager.update(
        "shop",
        {"classify": TaskConfig(model="big"), "other": TaskConfig(model="x")},
        author="alice",
        reason="initial",
    )
    return manager


def _period(engine: Engine, i: int, windows: list[WindowStats]) -> Verdict | None:
    with session_scope(engine) as s:
        deployment = get_deployment(s, stable_id("deployment", _decision().id))
        return observe(
            s,
            [deployment],
            window_start=T0 + i * PERIOD,
            window_end=T0 + (i + 1) * PERIOD,
            windows={"classify": windows},
            settings=CANARY,
            tolerance=TOL,
        )[deployment.id]


def _rollout_windows(i: int, canary_quality: float, **kw: object) -> list[WindowStats]:
    rng = np.random.default_rng(i)
    start = T0 + i * PERIOD
    return [
        window(
            rng,
            start,
            model="big",
            variant="baseline",
            n=300,
            config_version=CANARY_VERSION,
            **kw,  # type: ignore[arg-type]
        ),
        window(
            rng,
            start,
            model="small",
            variant="canary",
            n=150,
            quality=canary_quality,
            config_version=CANARY_VERSION,
            **kw,  # type: ignore[arg-type]
        ),
    ]


def _run_periods(engine: Engine, start: int, count: int, canary_quality: float) -> list[str]:
    outcomes = []
    for i in range(start, start + count):
        verdict = _period(engine, i, _rollout_windows(i, canary_quality))
        outcomes.append("none" if verdict is None else verdict.outcome)
    return outcomes


def test_a_good_canary_is_promoted_once_shown_within_the_tolerance_and_watched(
    engine: Engine,
) -> None:
    manager = _setup(engine)
    with session_scope(engine) as s:
        deployment = start_canary(s, _decision(), settings=CANARY, now=T0)
        again = start_canary(s, _decision(), settings=CANARY, now=T0 + PERIOD)
    assert again == deployment
    active = manager.active("shop")
    assert active.version == CANARY_VERSION
    task = active.tasks["classify"]
    assert task.canary is not None
    assert (task.canary.version, task.canary.weight, task.canary.overrides) == (
        CANARY_VERSION,
        0.01,
        {"model": "small"},
    )
    assert task.shadow == ShadowConfig(model="small", share=CANARY.shadow_share)
    outcomes = _run_periods(engine, 0, 2, 0.85)
    assert outcomes[-1] == "pass"  # held min_stage_duration: promoted from 1 %
    with session_scope(engine) as s:
        watched = get_deployment(s, deployment.id)
    assert watched.status == "watching"
    config = manager.active("shop")
    assert config.tasks["classify"].model == "small"
    assert config.tasks["classify"].shadow is None  # the shadow ends with the rollout
    assert _run_periods(engine, 0, 1, 0.85) == ["none"]  # a replayed period writes nothing
    for i in range(2, 6):
        _watch(engine, deployment.id, i, promoted_quality=0.85, holdback_quality=0.85)
    with session_scope(engine) as s:
        done = get_deployment(s, deployment.id)
        decision = get_decision(s, deployment.decision_id)
    assert done.status == "promoted", done.reason
    assert decision.status == "promoted"
    assert manager.active("shop").tasks["classify"] == TaskConfig(model="small")
    assert manager.active("shop").tasks["other"] == TaskConfig(model="x")


def test_the_promoting_verdict_explains_its_quality_band(engine: Engine) -> None:
    _setup(engine)
    with session_scope(engine) as s:
        start_canary(s, _decision(), settings=CANARY, now=T0)
    _period(engine, 0, _rollout_windows(0, 0.85))
    verdict = _period(engine, 1, _rollout_windows(1, 0.85))
    assert verdict is not None
    check = next(c for c in verdict.checks if c.metric == "quality")
    assert check.test == "noninferiority_cs"
    assert check.passed is True
    assert check.threshold == -TOL
    assert check.p_value is not None
    assert check.p_value < CANARY.alpha
    assert (check.baseline_n, check.canary_n) == (600, 300)  # everything served so far


def test_a_worse_canary_is_rolled_back_at_the_first_weight_with_its_reason(engine: Engine) -> None:
    manager = _setup(engine)
    with session_scope(engine) as s:
        deployment = start_canary(s, _decision(), settings=CANARY, now=T0)
    outcomes = _run_periods(engine, 0, 3, 0.70)
    assert "fail" in outcomes
    with session_scope(engine) as s:
        done = get_deployment(s, deployment.id)
        events = [e.event_type for e in list_outbox(s)]
    assert done.status == "rolled_back"
    assert done.weight == 0.01
    assert "quality" in done.reason
    assert manager.active("shop").tasks["classify"] == TaskConfig(model="big")
    assert "rollback" in events
    assert "verdict" in events


def test_sparse_binary_scores_raise_the_weight_as_the_band_rises(engine: Engine) -> None:
    manager = _setup(engine)
    with session_scope(engine) as s:
        deployment = start_canary(s, _decision(), settings=CANARY, now=T0)
    weights = []
    for i in range(40):
        rng = np.random.default_rng(100 + i)
        start = T0 + i * PERIOD
        with session_scope(engine) as s:
            weight = get_deployment(s, deployment.id).weight
        canary_n = max(int(400 * weight), 2)
        windows = [
            window(rng, start, model="big", variant="baseline", n=400, quality=0.8, binary=True,
                   config_version=CANARY_VERSION),
            window(rng, start, model="small", variant="canary", n=canary_n, quality=0.8,
                   binary=True, config_version=CANARY_VERSION),
        ]  # fmt: skip
        verdict = _period(engine, i, windows)
        weights.append(weight)
        if verdict is not None and verdict.outcome != "inconclusive":
            break
    assert weights[0] == 0.01
    assert max(weights) > 0.05, weights
    assert weights == sorted(weights)
    with session_scope(engine) as s:
        verdicts = get_deployment(s, deployment.id).verdicts
    eta = [c for v in verdicts for c in v.checks if c.metric == "expected_time_to_verdict_h"]
    assert eta, "an inconclusive verdict projects the time to a decision"
    assert all(c.test == "projection" for c in eta)
    assert manager.active("shop").version > CANARY_VERSION  # each weight is a config version


def test_calls_served_under_another_config_version_or_model_are_not_judged(
    engine: Engine,
) -> None:
    _setup(engine)
    with session_scope(engine) as s:
        deployment = start_canary(s, _decision(), settings=CANARY, now=T0)
    rng = np.random.default_rng(7)
    stale = [
        # late canary calls from an older canary version, and baseline calls of the candidate
        window(rng, T0, model="small", variant="canary", n=300, quality=0.2, config_version=1),
        window(rng, T0, model="small", variant="baseline", n=300, quality=0.2,
               config_version=CANARY_VERSION),
    ]  # fmt: skip
    _period(engine, 0, _rollout_windows(0, 0.85) + stale)
    verdict = _period(engine, 1, _rollout_windows(1, 0.85) + stale)
    assert verdict is not None
    assert verdict.outcome == "pass"
    check = next(c for c in verdict.checks if c.metric == "quality")
    assert (check.baseline_n, check.canary_n) == (600, 300)
    with session_scope(engine) as s:
        assert get_deployment(s, deployment.id).status == "watching"


def test_a_rollout_without_a_verdict_in_its_time_budget_is_rolled_back(engine: Engine) -> None:
    _setup(engine)
    with session_scope(engine) as s:
        deployment = start_canary(s, _decision(), settings=CANARY, now=T0)
    # a candidate sitting on the tolerance: no amount of data decides it
    for i in range(0, 130, 10):
        _period(engine, i, _rollout_windows(i, 0.85 - TOL, binary=True))
    with session_scope(engine) as s:
        done = get_deployment(s, deployment.id)
    assert done.status == "rolled_back"
    assert "canary.max_rollout_duration" in done.reason


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


def _watch(
    engine: Engine,
    deployment_id: str,
    period: int,
    *,
    promoted_quality: float = 0.85,
    holdback_quality: float = 0.85,
    promoted_latency: float = 400.0,
    holdback_latency: float = 400.0,
) -> Verdict | None:
    with session_scope(engine) as s:
        deployment = get_deployment(s, deployment_id)
        config = active_config(s, "shop")
    assert config is not None
    canary = config.tasks["classify"].canary
    version = canary.version if canary is not None else config.version
    rng = np.random.default_rng(1000 + period)
    start = T0 + period * PERIOD
    windows = [
        window(rng, start, model="small", variant="baseline", n=300, quality=promoted_quality,
               latency=promoted_latency, config_version=config.version),
        window(rng, start, model="big", variant="canary", n=150, quality=holdback_quality,
               latency=holdback_latency, config_version=version),
    ]  # fmt: skip
    del deployment
    return _period(engine, period, windows)


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
    verdict = _watch(engine, deployment_id, period, promoted_latency=800.0, holdback_latency=800.0)
    assert verdict is not None
    assert verdict.outcome != "fail"
    assert verdict.reason.endswith("(promoted config against the holdback)")
    # the promoted config alone regresses: rolled back
    verdict = _watch(
        engine, deployment_id, period + 1, promoted_latency=1200.0, holdback_latency=400.0
    )
    assert verdict is not None
    assert verdict.outcome == "fail"
    with session_scope(engine) as s:
        done = get_deployment(s, deployment_id)
    assert done.status == "rolled_back"
    assert done.reason.startswith("verdict fail after promotion")
    assert manager.active("shop").tasks["classify"] == TaskConfig(model="big")
