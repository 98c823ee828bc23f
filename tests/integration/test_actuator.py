"""The actuator sink on real PostgreSQL: coordination, approval, cache safety, rewrite requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import Engine

from core.app_config import AppConfig, TaskConfig
from core.decisions import Decision, ExpectedImpact, stable_id
from core.settings import DecisionSettings, Settings
from operators.strategies import REWRITE_KEY
from rollout.config_manager import ConfigManager
from sinks.actuator import Actuator, PeriodWork
from storage.database import create_db_engine, session_scope
from storage.decisions import get_decision, list_deployments
from storage.outbox import list_outbox

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(fresh_database: Callable[[], str]) -> Iterator[Engine]:
    engine = create_db_engine(fresh_database())
    yield engine
    engine.dispose()


def _proposal(strategy: str, action: dict[str, object], task: str = "classify") -> Decision:
    return Decision(
        id=stable_id(strategy, task),
        created_at=T0,
        app="shop",
        task=task,
        strategy=strategy,  # type: ignore[arg-type]
        action=action,
        rationale="test",
        expected_impact=ExpectedImpact(cost_change_pct=-30.0),
        confidence=0.95,
    )


def _work(*proposals: Decision, at: datetime = T0) -> PeriodWork:
    return PeriodWork(
        app="shop",
        window_start=at - timedelta(minutes=1),
        window_end=at,
        proposals=list(proposals),
        windows={"classify": [], "chat": []},
    )


def _actuator(engine: Engine, **decisions: object) -> tuple[Actuator, list[AppConfig]]:
    published: list[AppConfig] = []
    settings = Settings(decisions=DecisionSettings(**decisions))  # type: ignore[arg-type]
    ConfigManager(engine, clock=lambda: T0 - timedelta(hours=1)).update(
        "shop",
        {"classify": TaskConfig(model="big"), "chat": TaskConfig(params={"multi_turn": True})},
        author="alice",
        reason="initial",
    )
    return Actuator(engine, settings, published.append), published


def test_one_change_per_task_starts_as_a_canary_and_is_published(engine: Engine) -> None:
    actuator, published = _actuator(engine)
    model = _proposal("model_selection", {"model": "small"})
    cache = _proposal("caching", {"cache": {"enabled": True, "ttl_s": 60.0}})
    started = actuator.apply(_work(model, cache))
    assert len(started) == 1
    with session_scope(engine) as s:
        (deployment,) = list_deployments(s, app="shop")[0]
        assert get_decision(s, started[0].id).status == "canary"
    assert deployment.task == "classify"
    assert [c.version for c in published] == [2]
    canary = published[0].tasks["classify"].canary
    assert canary is not None
    assert canary.weight == 0.01
    # the next period: the task is in flight, nothing more starts
    assert actuator.apply(_work(cache, at=T0 + timedelta(minutes=1))) == []


def test_cache_is_never_enabled_for_multi_turn_traffic(engine: Engine) -> None:
    actuator, published = _actuator(engine)
    cache = _proposal("caching", {"cache": {"enabled": True, "ttl_s": 60.0}}, task="chat")
    assert actuator.apply(_work(cache)) == []
    assert published == []


def test_rewrite_request_is_not_config_and_approval_waits_for_a_person(engine: Engine) -> None:
    actuator, published = _actuator(engine, require_approval=("prompt_optimization",))
    prompt = _proposal("prompt_optimization", {"prompt": {"prompt_cache": True}, REWRITE_KEY: "x"})
    (waiting,) = actuator.apply(_work(prompt))
    with session_scope(engine) as s:
        assert get_decision(s, waiting.id).status == "proposed"
        # The approval request, and the seeded config's version 1 (no new version since).
        assert {e.key: e.event_type for e in list_outbox(s)} == {
            f"approval:{waiting.id}": "approval_needed",
            "config:shop:v1": "config_changed",
        }
        assert list_deployments(s, app="shop")[0] == []
    assert published == []
    free, published = Actuator(engine, Settings(), published.append), published
    (started,) = free.apply(
        _work(
            _proposal(
                "prompt_optimization",
                {"prompt": {"prompt_cache": True}, REWRITE_KEY: "requested"},
                task="chat",
            )
        )
    )
    canary = published[-1].tasks["chat"].canary
    assert canary is not None
    assert canary.overrides == {"prompt": {"prompt_cache": True}}
    assert started.strategy == "prompt_optimization"


def test_a_rolled_back_change_is_not_retried_within_the_memory(engine: Engine) -> None:
    from rollout.rollback import rollback_deployment
    from storage.decisions import deployment_for

    actuator, _ = _actuator(engine)
    first = _proposal("model_selection", {"model": "small"})
    (started,) = actuator.apply(_work(first))
    with session_scope(engine) as s:
        deployment = deployment_for(s, started.id)
        assert deployment is not None
        rollback_deployment(s, deployment.id, actor="judge", reason="quality", now=T0)
    again = Decision(**{**msgspec.structs.asdict(first), "id": "retry", "created_at": T0})
    later = T0 + timedelta(hours=2)  # past the cooldown, within decisions.rolled_back_memory
    assert actuator.apply(_work(again, at=later)) == []
    much_later = T0 + timedelta(days=1, minutes=1)
    assert [d.id for d in actuator.apply(_work(again, at=much_later))] == ["retry"]
