"""A deployment period by period: the judge's verdict and what it leads to.

Each closed period, :func:`observe` stores what both sides served and asks the judge about the
current stage (pooled over the stage):

- pass, held at least ``canary.min_stage_duration`` → the next weight (a new version); after
  the last stage → promoted: the overrides become the task's config and the deployment is
  *watched* for ``canary.post_promotion_watch`` against a holdback (``canary.holdback`` of calls
  kept on the old values);
- fail (a gate, a test or the decision's rollback plan) → rollback (``sinks.rollback``);
  inconclusive → hold, and roll back when a stage stays inconclusive longer than
  ``canary.max_stage_duration``;
- while watched, the promoted config is judged the same way; a fail rolls back, the end of the
  watch removes the holdback and finishes the deployment as promoted.

Every function works in the caller's session (one transaction with the verdict and the outbox
row) and uses event time, so a replayed period writes nothing twice.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.app_config import CanaryConfig, ConfigVersion, TaskConfig, apply_overrides
from core.decisions import Deployment, Verdict, stable_id
from core.errors import ValidationError
from core.settings import CanarySettings
from operators.judge import SideSummary, judge, plan_checks
from sinks.canary_controller import CONTROLLER, task_configs
from sinks.rollback import rollback_deployment
from storage.configs import save_config
from storage.decisions import (
    add_verdict,
    get_decision,
    get_deployment,
    save_deployment,
    set_decision_status,
)
from storage.models import CanarySampleRow
from storage.outbox import enqueue

__all__ = ["observe"]


def _publish_stage(
    session: Session, deployment: Deployment, weight: float, key: str, now: datetime, reason: str
) -> ConfigVersion:
    tasks, _ = task_configs(session, deployment.app)
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
        author=CONTROLLER,
        reason=reason,
        now=now,
        decision_key=key,
    )


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
            actor=CONTROLLER,
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
            actor=CONTROLLER,
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
    tasks, version = task_configs(session, deployment.app)
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
        author=CONTROLLER,
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
    tasks, _ = task_configs(session, deployment.app)
    task = tasks.get(deployment.task)
    if task is not None and task.canary is not None and task.canary.deployment_id == deployment.id:
        tasks[deployment.task] = msgspec.structs.replace(task, canary=None)
        save_config(
            session,
            deployment.app,
            tasks,
            author=CONTROLLER,
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
