"""A deployment period by period, persisted: totals, the verdict, and its transition.

Each closed period, :func:`observe` takes the task's windows, splits them into sides by variant
AND config version (:mod:`rollout.sides`), adds them to the rollout's running totals
(:mod:`storage.canary_totals`: one row per deployment and weight, so a period costs the same
however long the rollout has run), asks :func:`rollout.policy.step` for the verdict and the
transition, and carries it out: a new canary weight (a new config version), promotion (the
overrides become the task's config, watched against a holdback), the end of the watch, or a
rollback (:mod:`rollout.rollback`).

Every function works in the caller's session (one transaction with the verdict and the outbox
row) and uses event time, so a replayed period writes nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy.orm import Session

from core.app_config import CanaryConfig, ConfigVersion, TaskConfig, apply_overrides
from core.decisions import Decision, Deployment, Verdict, stable_id
from core.errors import ValidationError
from core.settings import CanarySettings
from core.stats import WindowStats
from operators.side_summary import SideSummary
from rollout.canary_controller import CONTROLLER, task_configs
from rollout.policy import RolloutTotals, Transition, candidate_model, step
from rollout.rollback import rollback_deployment
from rollout.sides import rollout_sides, watch_sides
from storage.canary_totals import add_totals, load_totals
from storage.configs import save_config
from storage.decisions import (
    add_verdict,
    get_decisions,
    save_deployment,
    set_decision_status,
)
from storage.models import CanarySampleRow
from storage.outbox import enqueue

__all__ = ["observe"]

_Loaded = dict[int, tuple[CanarySampleRow, RolloutTotals]]


def _load(session: Session, deployment_ids: Sequence[str]) -> dict[str, _Loaded]:
    """Every weight's running totals of these deployments (one query)."""
    return {
        deployment: {
            stage: (row, msgspec.convert(row.summary, RolloutTotals)) for stage, row in rows.items()
        }
        for deployment, rows in load_totals(session, deployment_ids).items()
    }


def _add_period(
    session: Session,
    totals: _Loaded,
    deployment: Deployment,
    window_start: datetime,
    sides: tuple[SideSummary, SideSummary],
) -> bool:
    """Add one period to the current weight's totals; False when it was added before."""
    found = totals.get(deployment.stage)
    if found is not None and window_start <= found[1].through:
        return False
    if found is None:
        row = add_totals(session, deployment.id, deployment.stage, deployment.stage_started_at)
        current = RolloutTotals(through=window_start)
    else:
        row, current = found
    current = RolloutTotals(
        through=window_start,
        first=current.first.merge(sides[0]),
        second=current.second.merge(sides[1]),
    )
    row.summary = msgspec.to_builtins(current)
    totals[deployment.stage] = (row, current)
    return True  # written with the transaction's next flush, with every task's rows at once


def _holdback_version(session: Session, deployment: Deployment) -> int:
    tasks, version = task_configs(session, deployment.app)
    canary = tasks.get(deployment.task, TaskConfig()).canary
    if canary is not None and canary.deployment_id == deployment.id:
        return canary.version
    return version


def observe(
    session: Session,
    deployments: Sequence[Deployment],
    *,
    window_start: datetime,
    window_end: datetime,
    windows: Mapping[str, Sequence[WindowStats]],
    settings: CanarySettings,
    tolerance: float,
) -> dict[str, Verdict | None]:
    """Record one period of an app's running or watched deployments and act on each verdict.

    Args:
        session: The caller's transaction.
        deployments: The app's open deployments, as stored.
        window_start: Start of the closed period.
        window_end: Its end.
        windows: Each task's tumbling windows of the period (every model, variant, version).
        settings: The canary settings.
        tolerance: The quality tolerance (``decisions.quality_tolerance``).

    Returns:
        Each deployment's verdict by id, ``None`` when it is finished, the period was seen
        before or predates its current stage, or its task served nothing this period.
    """
    decisions = get_decisions(session, [d.decision_id for d in deployments])
    totals = _load(session, [d.id for d in deployments])
    out: dict[str, Verdict | None] = {}
    for deployment in deployments:
        task_windows = windows.get(deployment.task)
        out[deployment.id] = (
            None
            if task_windows is None
            else _observe_one(
                session,
                deployment,
                decisions[deployment.decision_id],
                totals[deployment.id],
                _Period(window_start, window_end, task_windows),
                settings,
                tolerance,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class _Period:
    start: datetime
    end: datetime
    windows: Sequence[WindowStats]


def _observe_one(
    session: Session,
    deployment: Deployment,
    decision: Decision,
    totals: _Loaded,
    period: _Period,
    settings: CanarySettings,
    tolerance: float,
) -> Verdict | None:
    window_start, window_end, windows = period.start, period.end, period.windows
    if deployment.status not in ("running", "paused", "watching"):
        return None
    if window_start < deployment.stage_started_at:
        return None
    watching = deployment.status == "watching"
    model = candidate_model(decision)
    if watching:
        sides = watch_sides(windows, _holdback_version(session, deployment), model)
    else:
        sides = rollout_sides(windows, deployment.canary_version, model)
    if not _add_period(session, totals, deployment, window_start, sides):
        return None
    result = step(
        deployment,
        decision,
        {stage: t for stage, (_, t) in totals.items()},
        window_end,
        settings,
        tolerance,
    )
    verdict = Verdict(
        id=stable_id("verdict", deployment.id, deployment.stage, window_end.isoformat()),
        deployment_id=deployment.id,
        stage=deployment.stage,
        weight=deployment.weight,
        outcome=result.outcome,
        window_start=deployment.stage_started_at,
        window_end=window_end,
        checks=result.checks,
        reason=result.reason,
        created_at=window_end,
    )
    add_verdict(session, verdict, known_new=True)  # _add_period saw this period first
    after = _carry_out(session, deployment, result.transition, settings, window_end)
    _notify_verdict(session, deployment, after, verdict)
    return verdict


def _carry_out(
    session: Session,
    deployment: Deployment,
    transition: Transition,
    settings: CanarySettings,
    now: datetime,
) -> Deployment:
    """Persist a transition; the deployment as it is afterwards."""
    if transition.kind == "rollback":
        after, _ = rollback_deployment(
            session, deployment.id, actor=CONTROLLER, reason=transition.why, now=now
        )
        return after
    if transition.kind == "finish":
        return _finish(session, deployment, now)
    if transition.kind == "promote":
        return _promote(session, deployment, settings, now)
    if transition.kind == "advance":
        return _advance(session, deployment, transition.weight, now, transition.why)
    return deployment


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


def _advance(
    session: Session, deployment: Deployment, weight: float, now: datetime, why: str
) -> Deployment:
    following = deployment.stage + 1
    _publish_stage(
        session,
        deployment,
        weight,
        f"{deployment.decision_id}:stage:{following}",
        now,
        f"canary {weight:.0%} (from {deployment.weight:.0%}): {why}",
    )
    after = msgspec.structs.replace(
        deployment,
        stage=following,
        weight=weight,
        stage_started_at=now,
        updated_at=now,
        verdicts=(),
    )
    save_deployment(session, after)
    return after


def _promote(
    session: Session, deployment: Deployment, settings: CanarySettings, now: datetime
) -> Deployment:
    following = deployment.stage + 1
    tasks, version = task_configs(session, deployment.app)
    task = tasks[deployment.task]
    overrides = task.canary.overrides if task.canary is not None else {}
    promoted = msgspec.structs.replace(apply_overrides(task, overrides), shadow=None)
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
    after = msgspec.structs.replace(
        deployment,
        status="watching",
        stage=following,
        weight=1.0,
        stage_started_at=now,
        updated_at=now,
        verdicts=(),
    )
    save_deployment(session, after)
    set_decision_status(session, deployment.decision_id, "promoted", now=now)
    return after


def _finish(session: Session, deployment: Deployment, now: datetime) -> Deployment:
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
    after = msgspec.structs.replace(
        deployment,
        status="promoted",
        updated_at=now,
        finished_at=now,
        reason="post-promotion watch passed",
        verdicts=(),
    )
    save_deployment(session, after)
    return after


def _notify_verdict(
    session: Session, deployment: Deployment, after: Deployment, verdict: Verdict
) -> None:
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
