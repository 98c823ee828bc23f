"""The rollback engine: put a task back on the config it had before a deployment, at once.

Triggered by a failed verdict, a post-promotion health check, a stage held inconclusive too
long, or a person (REST/gRPC). Only the deployment's task changes; the app's other tasks keep
their current config. Idempotent: rolling back a rolled-back deployment changes nothing.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy.orm import Session

from core.app_config import ConfigVersion, TaskConfig
from core.decisions import Deployment
from core.errors import ValidationError
from storage.audit import record_audit
from storage.configs import active_config, config_version, save_config
from storage.decisions import get_deployment, save_deployment, set_decision_status
from storage.outbox import enqueue

__all__ = ["rollback_deployment"]


def _restored_tasks(session: Session, deployment: Deployment) -> dict[str, TaskConfig]:
    current = active_config(session, deployment.app)
    tasks = dict(current.tasks) if current is not None else {}
    before: TaskConfig | None = None
    if deployment.baseline_version > 0:
        before = config_version(session, deployment.app, deployment.baseline_version).tasks.get(
            deployment.task
        )
    if before is None:
        tasks.pop(deployment.task, None)
    else:
        tasks[deployment.task] = msgspec.structs.replace(before, canary=None)
    return tasks


def rollback_deployment(
    session: Session, deployment_id: str, *, actor: str, reason: str, now: datetime
) -> tuple[Deployment, ConfigVersion | None]:
    """Roll a deployment back; returns it and the config version written (None: no change).

    Raises:
        NotFoundError: When the deployment does not exist.
        ValidationError: When the deployment already finished as promoted.
    """
    deployment = get_deployment(session, deployment_id)
    if deployment.status == "rolled_back":
        return deployment, None
    if deployment.status == "promoted":
        raise ValidationError(
            f"deployment {deployment_id} finished as promoted; change the config instead"
        )
    saved = save_config(
        session,
        deployment.app,
        _restored_tasks(session, deployment),
        author=actor,
        reason=f"rollback of deployment {deployment_id}: {reason}",
        now=now,
        decision_key=f"{deployment.decision_id}:rollback",
    )
    done = msgspec.structs.replace(
        deployment,
        status="rolled_back",
        updated_at=now,
        finished_at=now,
        reason=reason,
        verdicts=(),
    )
    save_deployment(session, done)
    set_decision_status(session, deployment.decision_id, "rolled_back", now=now)
    record_audit(
        session,
        actor=actor,
        action="deployment.rollback",
        resource="deployment",
        resource_id=deployment_id,
        detail={"reason": reason, "config_version": saved.version},
        at=now,
    )
    enqueue(
        session,
        key=f"rollback:{deployment_id}",
        event_type="rollback",
        app=deployment.app,
        payload={
            "deployment_id": deployment_id,
            "decision_id": deployment.decision_id,
            "app": deployment.app,
            "task": deployment.task,
            "stage": deployment.stage,
            "weight": deployment.weight,
            "reason": reason,
            "actor": actor,
            "config_version": saved.version,
        },
        now=now,
    )
    return get_deployment(session, deployment_id), saved
