"""The canary controller: a decision becomes a deployment at the first weight stage.

``start_canary`` publishes the canary (a new config version whose task carries
``canary = {version, weight, overrides}`` and, for a model change, ``shadow = {model, share}``
for applications that can also score the candidate on the same requests) and records the
deployment; ``approve_decision`` and ``reject_decision`` settle decisions that wait for a
person. What happens to a deployment period by period (judge, next weight, promotion, watch,
rollback) is in ``rollout.stages``.

Every function works in the caller's session (one transaction with the outbox row) and is
idempotent by decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.orm import Session

from core.app_config import CanaryConfig, ShadowConfig, TaskConfig, apply_overrides
from core.decisions import Decision, Deployment, stable_id
from core.errors import ValidationError
from core.settings import CanarySettings
from operators.exposure import ladder
from operators.strategies import REWRITE_KEY
from storage.audit import record_audit
from storage.configs import active_config, save_config
from storage.decisions import (
    deployment_for,
    get_decision,
    save_decision,
    save_deployment,
    set_decision_status,
)
from storage.outbox import enqueue

__all__ = [
    "CONTROLLER",
    "approve_decision",
    "config_overrides",
    "reject_decision",
    "start_canary",
    "task_configs",
]

CONTROLLER = "canary-controller"  # the author of the config versions it writes


def config_overrides(action: dict[str, Any]) -> dict[str, Any]:
    """The part of a decision's action that is task config (not requests to the actuator)."""
    return {k: v for k, v in action.items() if k != REWRITE_KEY}


def task_configs(session: Session, app: str) -> tuple[dict[str, TaskConfig], int]:
    """The active task configs of ``app`` (a copy to change) and their version (0: none yet)."""
    current = active_config(session, app)
    if current is None:
        return {}, 0
    return dict(current.tasks), current.version


def start_canary(
    session: Session, decision: Decision, *, settings: CanarySettings, now: datetime
) -> Deployment:
    """Publish ``decision`` as a canary at the first stage's weight; idempotent by decision."""
    save_decision(session, decision, now=now)
    existing = deployment_for(session, decision.id)
    if existing is not None:
        return existing
    deployment_id = stable_id("deployment", decision.id)
    tasks, baseline_version = task_configs(session, decision.app)
    task = tasks.get(decision.task, TaskConfig())
    if task.canary is not None and task.canary.deployment_id != deployment_id:
        raise ValidationError(
            f"task {decision.app}/{decision.task} already runs canary "
            f"{task.canary.deployment_id}; one change at a time"
        )
    overrides = config_overrides(decision.action)
    apply_overrides(task, overrides)  # validates the action before anything is written
    weight = ladder(settings.stages)[0]
    model = overrides.get("model")
    shadow = (
        ShadowConfig(model=model, share=settings.shadow_share)
        if isinstance(model, str) and settings.shadow_share > 0
        else None
    )
    tasks[decision.task] = msgspec.structs.replace(
        task,
        canary=CanaryConfig(
            version=baseline_version + 1,
            weight=weight,
            overrides=overrides,
            deployment_id=deployment_id,
        ),
        shadow=shadow,
    )
    saved = save_config(
        session,
        decision.app,
        tasks,
        author=f"decision:{decision.id}",
        reason=f"canary {weight:.0%}: {decision.rationale}",
        now=now,
        decision_key=f"{decision.id}:stage:0",
    )
    deployment = Deployment(
        id=deployment_id,
        decision_id=decision.id,
        app=decision.app,
        task=decision.task,
        status="running",
        stage=0,
        weight=weight,
        baseline_version=baseline_version,
        canary_version=saved.version,
        started_at=now,
        stage_started_at=now,
        updated_at=now,
    )
    save_deployment(session, deployment)
    set_decision_status(session, decision.id, "canary", now=now, deployment_id=deployment_id)
    enqueue(
        session,
        key=f"canary:{deployment_id}",
        event_type="decision",
        app=decision.app,
        payload={
            **msgspec.to_builtins(decision),
            "status": "canary",
            "deployment_id": deployment_id,
        },
        now=now,
    )
    return deployment


def _settle(
    session: Session,
    decision_id: str,
    actor: str,
    action: str,
    detail: dict[str, Any],
    now: datetime,
) -> Decision:
    """The decision waiting for a person, with the person's action audited."""
    decision = get_decision(session, decision_id)
    if decision.status != "proposed":
        raise ValidationError(f"decision {decision_id} is {decision.status}, not proposed")
    record_audit(
        session,
        actor=actor,
        action=action,
        resource="decision",
        resource_id=decision_id,
        detail=detail,
        at=now,
    )
    return decision


def approve_decision(
    session: Session, decision_id: str, *, actor: str, settings: CanarySettings, now: datetime
) -> Decision:
    """Approve a proposed decision: it starts as a canary.

    Raises:
        NotFoundError: When the decision does not exist.
        ValidationError: When it is not waiting for approval.
    """
    decision = _settle(session, decision_id, actor, "decision.approve", {}, now)
    start_canary(session, decision, settings=settings, now=now)
    return get_decision(session, decision_id)


def reject_decision(
    session: Session, decision_id: str, *, actor: str, reason: str, now: datetime
) -> Decision:
    """Reject a proposed decision; nothing is deployed.

    Raises:
        NotFoundError: When the decision does not exist.
        ValidationError: When it is not waiting for approval.
    """
    decision = _settle(session, decision_id, actor, "decision.reject", {"reason": reason}, now)
    enqueue(
        session,
        key=f"reject:{decision_id}",
        event_type="decision_rejected",
        app=decision.app,
        payload={
            "decision_id": decision_id,
            "app": decision.app,
            "task": decision.task,
            "strategy": decision.strategy,
            "actor": actor,
            "reason": reason,
        },
        now=now,
    )
    return set_decision_status(session, decision_id, "rejected", now=now)
