"""The canary controller: a decision becomes a deployment that walks the weight stages.

``start_canary`` publishes the canary (a new config version whose task carries
``canary = {version, weight, overrides}``). Each closed period, :func:`observe` stores what
both sides served and asks the judge about the current stage (pooled over the stage):

- pass, held at least ``canary.min_stage_duration`` → the next weight (a new version); after
  the last stage → promoted: the overrides become the task's config, the canary is removed,
  and the deployment is *watched* for ``canary.post_promotion_watch``;
- fail → rollback (``sinks.rollback``); inconclusive → hold, and roll back when a stage stays
  inconclusive longer than ``canary.max_stage_duration``;
- while watched, the promoted config's calls are judged against the pre-rollout baseline the
  same way; a fail rolls back, the end of the watch finishes the deployment as promoted.

Every function works in the caller's session (one transaction with the verdict and the outbox
row) and uses event time, so a replayed period writes nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.app_config import CanaryConfig, ConfigVersion, TaskConfig, apply_overrides
from core.decisions import Decision, Deployment, Verdict, stable_id
from core.errors import ValidationError
from core.settings import CanarySettings
from operators.judge import SideSummary, judge, plan_checks
from operators.strategies import REWRITE_KEY
from sinks.rollback import rollback_deployment
from storage.audit import record_audit
from storage.configs import active_config, save_config
from storage.decisions import (
    add_verdict,
    deployment_for,
    get_decision,
    get_deployment,
    save_decision,
    save_deployment,
    set_decision_status,
)
from storage.models import CanarySampleRow
from storage.outbox import enqueue

__all__ = [
    "approve_decision",
    "config_overrides",
    "observe",
    "reject_decision",
    "start_canary",
]

_CONTROLLER = "canary-controller"


def config_overrides(action: dict[str, Any]) -> dict[str, Any]:
    """The part of a decision's action that is task config (not requests to the actuator)."""
    return {k: v for k, v in action.items() if k != REWRITE_KEY}


def _task_of(session: Session, app: str, task: str) -> tuple[dict[str, TaskConfig], int]:
    current = active_config(session, app)
    if current is None:
        return {}, 0
    return dict(current.tasks), current.version


def _publish_stage(
    session: Session, deployment: Deployment, weight: float, key: str, now: datetime, reason: str
) -> ConfigVersion:
    tasks, _ = _task_of(session, deployment.app, deployment.task)
    task = tasks.get(deployment.task, TaskConfig())
    canary = task.canary
    if canary is None:
        raise ValidationError(f"task {deployment.task!r} has no canary to change")
    tasks[deployment.task] = msgspec.structs.replace(
        task, canary=msgspec.structs.replace(canary, weight=weight)
    )
    return save_config(
        session,
        deployment.app,
        tasks,
        author=_CONTROLLER,
        reason=reason,
        now=now,
        decision_key=key,
    )


def start_canary(
    session: Session, decision: Decision, *, settings: CanarySettings, now: datetime
) -> Deployment:
    """Publish ``decision`` as a canary at the first stage's weight; idempotent by decision."""
    save_decision(session, decision, now=now)
    existing = deployment_for(session, decision.id)
    if existing is not None:
        return existing
    deployment_id = stable_id("deployment", decision.id)
    tasks, baseline_version = _task_of(session, decision.app, decision.task)
    task = tasks.get(decision.task, TaskConfig())
    if task.canary is not None and task.canary.deployment_id != deployment_id:
        raise ValidationError(
            f"task {decision.app}/{decision.task} already runs canary "
            f"{task.canary.deployment_id}; one change at a time"
        )
    overrides = config_overrides(decision.action)
    apply_overrides(task, overrides)  # validates the action before anything is written
    weight = settings.stages[0]
    tasks[decision.task] = msgspec.structs.replace(
        task,
        canary=CanaryConfig(
            version=baseline_version + 1,
            weight=weight,
            overrides=overrides,
            deployment_id=deployment_id,
        ),
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


def approve_decision(
    session: Session, decision_id: str, *, actor: str, settings: CanarySettings, now: datetime
) -> Decision:
    """Approve a proposed decision: it starts as a canary.

    Raises:
        NotFoundError: When the decision does not exist.
        ValidationError: When it is not waiting for approval.
    """
    decision = get_decision(session, decision_id)
    if decision.status != "proposed":
        raise ValidationError(f"decision {decision_id} is {decision.status}, not proposed")
    record_audit(
        session,
        actor=actor,
        action="decision.approve",
        resource="decision",
        resource_id=decision_id,
        detail={},
        at=now,
    )
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
    decision = get_decision(session, decision_id)
    if decision.status != "proposed":
        raise ValidationError(f"decision {decision_id} is {decision.status}, not proposed")
    record_audit(
        session,
        actor=actor,
        action="decision.reject",
        resource="decision",
        resource_id=decision_id,
        detail={"reason": reason},
        at=now,
    )
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


def _store_sample(
    session: Session,
    deployment: Deployment,
    window_start: datetime,
    side: str,
    summary: SideSummary,
) -> None:
    found = session.scalars(
        select(CanarySampleRow.id).where(
            CanarySampleRow.deployment_id == deployment.id,
            CanarySampleRow.stage == deployment.stage,
            CanarySampleRow.window_start == window_start,
            CanarySampleRow.side == side,
        )
    ).first()
    if found is None:
        session.add(
            CanarySampleRow(
                deployment_id=deployment.id,
                stage=deployment.stage,
                window_start=window_start,
                side=side,
                summary=msgspec.to_builtins(summary),
            )
        )
        session.flush()


def _pooled(session: Session, deployment_id: str, stages: list[int], side: str) -> SideSummary:
    rows = session.scalars(
        select(CanarySampleRow.summary).where(
            CanarySampleRow.deployment_id == deployment_id,
            CanarySampleRow.stage.in_(stages),
            CanarySampleRow.side == side,
        )
    )
    out = SideSummary()
    for raw in rows:
        out = out.merge(msgspec.convert(raw, SideSummary))
    return out


def observe(
    session: Session,
    deployment: Deployment,
    *,
    window_start: datetime,
    window_end: datetime,
    baseline: SideSummary,
    canary: SideSummary,
    settings: CanarySettings,
) -> Verdict | None:
    """Record one period of a running or watched deployment and act on the judge's verdict.

    Returns the verdict, or ``None`` when the deployment is finished or the period predates
    its current stage.
    """
    if deployment.status not in ("running", "paused", "watching"):
        return None
    if window_start < deployment.stage_started_at:
        return None
    watching = deployment.status == "watching"
    if watching:
        reference, judged, against = _watch_sides(
            session, deployment, window_start, baseline, canary, settings
        )
    else:
        _store_sample(session, deployment, window_start, "baseline", baseline)
        _store_sample(session, deployment, window_start, "canary", canary)
        reference = _pooled(session, deployment.id, [deployment.stage], "baseline")
        judged = _pooled(session, deployment.id, [deployment.stage], "canary")
    outcome, checks, reason = judge(reference, judged, settings)
    if watching:
        reason = f"{reason} (promoted config against {against})"
    plan = plan_checks(
        judged, get_decision(session, deployment.decision_id).rollback_plan, settings
    )
    broken = [c.metric for c in plan if c.passed is False]
    checks += plan
    if broken:
        reason = (
            "rollback plan: " + ", ".join(broken) + (f"; {reason}" if outcome == "fail" else "")
        )
        outcome = "fail"
    verdict = Verdict(
        id=stable_id("verdict", deployment.id, deployment.stage, window_end.isoformat()),
        deployment_id=deployment.id,
        stage=deployment.stage,
        weight=deployment.weight,
        outcome=outcome,
        window_start=deployment.stage_started_at,
        window_end=window_end,
        checks=checks,
        reason=reason,
        created_at=window_end,
    )
    if not add_verdict(session, verdict):
        return verdict
    held = window_end - deployment.stage_started_at
    if outcome == "fail":
        what = "after promotion" if watching else f"at {deployment.weight:.0%}"
        rollback_deployment(
            session,
            deployment.id,
            actor=_CONTROLLER,
            reason=f"verdict fail {what}: {reason}",
            now=window_end,
        )
    elif watching:
        if held >= settings.post_promotion_watch:
            _finish(session, deployment, window_end)
    elif outcome == "inconclusive" and held > settings.max_stage_duration:
        rollback_deployment(
            session,
            deployment.id,
            actor=_CONTROLLER,
            reason=f"inconclusive for {held} at {deployment.weight:.0%}: {reason}",
            now=window_end,
        )
    elif outcome == "pass" and held >= settings.min_stage_duration:
        _advance(session, deployment, settings, window_end)
    _notify_verdict(session, deployment, verdict)
    return verdict


def _watch_sides(
    session: Session,
    deployment: Deployment,
    window_start: datetime,
    baseline: SideSummary,
    canary: SideSummary,
    settings: CanarySettings,
) -> tuple[SideSummary, SideSummary, str]:
    """The reference and the judged side of a watched deployment, and what the reference is.

    After promotion the promoted config serves the ``baseline`` variant and the holdback (the
    old config, on ``canary.holdback`` of calls) the ``canary`` variant. The holdback is a
    concurrent control: an incident that hits both sides (a provider slowing down) is not
    blamed on the change. Until it has ``min_samples`` calls, the reference is what the old
    config served before promotion.
    """
    _store_sample(session, deployment, window_start, "current", baseline)
    _store_sample(session, deployment, window_start, "holdback", canary)
    judged = _pooled(session, deployment.id, [deployment.stage], "current")
    holdback = _pooled(session, deployment.id, [deployment.stage], "holdback")
    if holdback.calls >= settings.min_samples:
        return holdback, judged, "the holdback"
    before = _pooled(session, deployment.id, list(range(deployment.stage)), "baseline")
    return before, judged, "the baseline before promotion"


def _advance(
    session: Session, deployment: Deployment, settings: CanarySettings, now: datetime
) -> None:
    following = deployment.stage + 1
    if following < len(settings.stages):
        weight = settings.stages[following]
        _publish_stage(
            session,
            deployment,
            weight,
            f"{deployment.decision_id}:stage:{following}",
            now,
            f"canary {weight:.0%} after a passing verdict at {deployment.weight:.0%}",
        )
        save_deployment(
            session,
            msgspec.structs.replace(
                deployment,
                stage=following,
                weight=weight,
                stage_started_at=now,
                updated_at=now,
                verdicts=(),
            ),
        )
        return
    tasks, version = _task_of(session, deployment.app, deployment.task)
    task = tasks[deployment.task]
    overrides = task.canary.overrides if task.canary is not None else {}
    promoted = apply_overrides(task, overrides)
    if settings.holdback > 0:
        old = msgspec.to_builtins(task)
        promoted = msgspec.structs.replace(
            promoted,
            canary=CanaryConfig(
                version=version + 1,
                weight=settings.holdback,
                overrides={k: old.get(k) for k in overrides},
                deployment_id=deployment.id,
                role="holdback",
            ),
        )
    tasks[deployment.task] = promoted
    save_config(
        session,
        deployment.app,
        tasks,
        author=_CONTROLLER,
        reason=f"promoted deployment {deployment.id}",
        now=now,
        decision_key=f"{deployment.decision_id}:promote",
    )
    save_deployment(
        session,
        msgspec.structs.replace(
            deployment,
            status="watching",
            stage=following,
            weight=1.0,
            stage_started_at=now,
            updated_at=now,
            verdicts=(),
        ),
    )
    set_decision_status(session, deployment.decision_id, "promoted", now=now)


def _finish(session: Session, deployment: Deployment, now: datetime) -> None:
    tasks, _ = _task_of(session, deployment.app, deployment.task)
    task = tasks.get(deployment.task)
    if task is not None and task.canary is not None and task.canary.deployment_id == deployment.id:
        tasks[deployment.task] = msgspec.structs.replace(task, canary=None)
        save_config(
            session,
            deployment.app,
            tasks,
            author=_CONTROLLER,
            reason=f"deployment {deployment.id} passed its watch: holdback removed",
            now=now,
            decision_key=f"{deployment.decision_id}:finish",
        )
    save_deployment(
        session,
        msgspec.structs.replace(
            deployment,
            status="promoted",
            updated_at=now,
            finished_at=now,
            reason="post-promotion watch passed",
            verdicts=(),
        ),
    )


def _notify_verdict(session: Session, deployment: Deployment, verdict: Verdict) -> None:
    after = get_deployment(session, deployment.id)
    if verdict.outcome == "inconclusive" and after.stage == deployment.stage:
        return  # a held stage is not news; the verdict stays visible in the API
    enqueue(
        session,
        key=f"verdict:{verdict.id}",
        event_type="verdict",
        app=deployment.app,
        payload={
            **msgspec.to_builtins(verdict),
            "app": deployment.app,
            "task": deployment.task,
            "decision_id": deployment.decision_id,
            "deployment_status": after.status,
            "stage_after": after.stage,
            "weight_after": after.weight,
        },
        now=verdict.created_at,
    )
