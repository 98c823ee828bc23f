"""Config versions, decisions, deployments, verdicts, audit and outbox on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from core.app_config import CanaryConfig, TaskConfig, decode_tasks
from core.decisions import (
    Decision,
    Deployment,
    ExpectedImpact,
    MetricCheck,
    RollbackLimit,
    Verdict,
    stable_id,
)
from core.errors import NotFoundError, ValidationError
from storage.audit import list_audit
from storage.configs import active_config, config_apps, config_version, config_versions, save_config
from storage.database import create_db_engine, session_scope
from storage.decisions import (
    add_verdict,
    deployment_for,
    get_decision,
    get_deployment,
    list_decisions,
    list_deployments,
    open_deployments,
    save_decision,
    save_deployment,
    set_decision_status,
)
from storage.outbox import claim_due, enqueue, list_outbox, mark_delivered, mark_failed

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(fresh_database: Callable[[], str]):  # type: ignore[no-untyped-def]
    engine = create_db_engine(fresh_database())
    yield engine
    engine.dispose()


def test_config_versions_diff_audit_and_decision_idempotency(engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        assert active_config(s, "shop") is None
        v1 = save_config(
            s,
            "shop",
            {"classify": TaskConfig(model="big")},
            author="alice",
            reason="initial",
            now=T0,
        )
    assert v1.version == 1
    assert v1.diff == {
        "classify": {
            "from": None,
            "to": {
                "model": "big",
                "provider": None,
                "params": {},
                "cache": None,
                "rate_limit": None,
                "batching": None,
                "prompt": None,
                "canary": None,
                "shadow": None,
            },
        }
    }
    canary = TaskConfig(
        model="big", canary=CanaryConfig(version=2, weight=0.01, overrides={"model": "small"})
    )
    with session_scope(engine) as s:
        v2 = save_config(
            s,
            "shop",
            {"classify": canary},
            author="decision:d1",
            reason="canary 1%",
            now=T0 + timedelta(minutes=1),
            decision_key="d1:stage:0",
        )
        again = save_config(
            s,
            "shop",
            {"classify": TaskConfig(model="other")},
            author="decision:d1",
            reason="replay",
            now=T0 + timedelta(minutes=2),
            decision_key="d1:stage:0",
        )
    assert v2.version == 2
    assert again == v2  # a replayed decision writes nothing
    assert set(v2.diff) == {"classify.canary"}
    with session_scope(engine) as s:
        assert active_config(s, "shop") == v2
        assert [v.version for v in config_versions(s, "shop")] == [2, 1]
        assert [v.version for v in config_versions(s, "shop", before=2)] == [1]
        assert config_version(s, "shop", 1).tasks == {"classify": TaskConfig(model="big")}
        with pytest.raises(NotFoundError):
            config_version(s, "shop", 9)
        assert config_apps(s) == ["shop"]
        audit = list_audit(s, resource="config")
    assert [a.resource_id for a in audit] == ["shop@2", "shop@1"]
    assert audit[0].actor == "decision:d1"
    assert audit[0].detail["reason"] == "canary 1%"


def test_invalid_task_config_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="unknown field `modle`"):
        decode_tasks({"t": {"modle": "x"}})
    with pytest.raises(ValidationError, match="weight"):
        decode_tasks({"t": {"canary": {"version": 1, "weight": 2.0}}})


def _decision(i: int) -> Decision:
    return Decision(
        id=stable_id("d", i),
        created_at=T0 + timedelta(seconds=i),
        app="shop",
        task="classify",
        strategy="model_selection",
        action={"model": "small"},
        rationale="cheaper and as good",
        evidence={"quality_diff": -0.001, "n": 400},
        expected_impact=ExpectedImpact(cost_change_pct=-60.0),
        confidence=0.9,
        rollback_plan=(RollbackLimit(metric="quality_mean", limit=0.8, direction="min"),),
    )


def test_decisions_are_idempotent_filtered_and_paged(engine) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        assert [save_decision(s, _decision(i), now=T0) for i in range(5)] == [True] * 5
        assert save_decision(s, _decision(0), now=T0) is False
    with session_scope(engine) as s:
        assert get_decision(s, _decision(3).id) == _decision(3)
        first = list_decisions(s, app="shop", limit=2)
        second = list_decisions(s, app="shop", limit=2, cursor=first.next_cursor)
        third = list_decisions(s, app="shop", limit=2, cursor=second.next_cursor)
        changed = set_decision_status(s, _decision(1).id, "rejected", now=T0)
        assert list_decisions(s, status=["rejected"]).items == [changed]
        with pytest.raises(NotFoundError):
            get_decision(s, "nope")
        with pytest.raises(ValidationError):
            list_decisions(s, cursor="garbage!")
    ids = [d.id for page in (first, second, third) for d in page.items]
    assert ids == [_decision(i).id for i in (4, 3, 2, 1, 0)]
    assert third.next_cursor is None


def test_deployments_with_verdicts_and_outbox(engine) -> None:  # type: ignore[no-untyped-def]
    decision = _decision(0)
    deployment = Deployment(
        id=stable_id("dep", decision.id),
        decision_id=decision.id,
        app="shop",
        task="classify",
        status="running",
        stage=0,
        weight=0.01,
        baseline_version=1,
        canary_version=2,
        started_at=T0,
        stage_started_at=T0,
        updated_at=T0,
    )
    verdict = Verdict(
        id=stable_id("v", 0),
        deployment_id=deployment.id,
        stage=0,
        weight=0.01,
        outcome="pass",
        window_start=T0,
        window_end=T0 + timedelta(minutes=1),
        checks=(
            MetricCheck(
                metric="latency_ms",
                baseline=100.0,
                canary=101.0,
                test="mann_whitney_u",
                statistic=1.0,
                p_value=0.4,
                baseline_n=300,
                canary_n=40,
                passed=True,
            ),
        ),
        reason="all checks passed",
        created_at=T0 + timedelta(minutes=1),
    )
    with session_scope(engine) as s:
        save_decision(s, decision, now=T0)
        save_deployment(s, deployment)
        assert add_verdict(s, verdict) is True
        assert add_verdict(s, verdict) is False
        assert (
            enqueue(
                s,
                key="verdict:" + verdict.id,
                event_type="verdict",
                payload={"v": 1},
                now=T0,
                app="shop",
            )
            is True
        )
        assert (
            enqueue(s, key="verdict:" + verdict.id, event_type="verdict", payload={"v": 2}, now=T0)
            is False
        )
    with session_scope(engine) as s:
        got = get_deployment(s, deployment.id)
        assert got.verdicts == (verdict,)
        assert deployment_for(s, decision.id) == got
        assert [d.id for d in open_deployments(s)] == [deployment.id]
        items, cursor = list_deployments(s, app="shop")
        assert [d.id for d in items] == [deployment.id]
        assert cursor is None
        due = claim_due(s, now=T0)
        assert [e.payload for e in due] == [{"v": 1}]
        mark_failed(s, due[0].id, error="503", next_attempt_at=T0 + timedelta(minutes=1))
    with session_scope(engine) as s:
        assert claim_due(s, now=T0) == []
        again = claim_due(s, now=T0 + timedelta(minutes=1))
        mark_delivered(s, again[0].id, now=T0 + timedelta(minutes=1), result={"slack": "ok"})
    with session_scope(engine) as s:
        (entry,) = list_outbox(s)
    assert (entry.status, entry.attempts, entry.last_error, entry.result) == (
        "delivered",
        2,
        None,
        {"slack": "ok"},
    )
