"""A deployment period by period: the judge's verdict and what it leads to.

Each closed period, :func:`observe` takes the task's windows, splits them into sides by variant
AND config version (:mod:`rollout.sides`), adds them to the rollout's running totals (one
row per deployment and weight: a period costs the same however long the rollout has run) and
asks the judge about everything served so far, one stratum per weight:

- **fail** (a gate, a harm test, quality shown worse than the tolerance, or the decision's
  rollback plan) → rollback (``rollout.rollback``);
- **pass** (quality shown within the tolerance, nothing failing), held at least
  ``canary.min_stage_duration`` → promoted: the overrides become the task's config and the
  deployment is *watched* for ``canary.post_promotion_watch`` against a holdback
  (``canary.holdback`` of calls kept on the old values);
- **inconclusive** → keep sampling, at the weight :func:`operators.exposure.planned_weight`
  allows (a new config version when it rises); no verdict within
  ``canary.max_rollout_duration`` → rollback. Every verdict projects the time to a decision.
- while watched, the promoted config is judged the same way; a fail rolls back, the end of the
  watch removes the holdback and finishes the deployment as promoted.

Every function works in the caller's session (one transaction with the verdict and the outbox
row) and uses event time, so a replayed period writes nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.app_config import CanaryConfig, ConfigVersion, TaskConfig, apply_overrides
from core.decisions import Decision, Deployment, MetricCheck, Verdict, stable_id
from core.errors import ValidationError
from core.settings import CanarySettings
from core.stats import WindowStats
from operators.exposure import expected_loss, ladder, planned_weight, time_to_verdict
from operators.judge import Judgement, SideSummary, judge, plan_checks
from rollout.canary_controller import CONTROLLER, task_configs
from rollout.rollback import rollback_deployment
from rollout.sides import rollout_sides, shadow_pairs, watch_sides
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

_TOTALS = "totals"  # side name of a running-totals row


class _Totals(msgspec.Struct, kw_only=True):
    """A weight's running totals: both sides, and the last period they include."""

    through: datetime
    first: SideSummary = msgspec.field(default_factory=SideSummary)  # baseline or holdback
    second: SideSummary = msgspec.field(default_factory=SideSummary)  # canary or promoted


_Loaded = dict[int, tuple[CanarySampleRow, _Totals]]


def _load_totals(session: Session, deployment_ids: Sequence[str]) -> dict[str, _Loaded]:
    """Every weight's running totals of these deployments (one query)."""
    out: dict[str, _Loaded] = {d: {} for d in deployment_ids}
    if not deployment_ids:
        return out
    rows = session.scalars(
        select(CanarySampleRow).where(
            CanarySampleRow.deployment_id.in_(list(deployment_ids)),
            CanarySampleRow.side == _TOTALS,
        )
    )
    for row in rows:
        out[row.deployment_id][row.stage] = (row, msgspec.convert(row.summary, _Totals))
    return out


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
        row = CanarySampleRow(
            deployment_id=deployment.id,
            stage=deployment.stage,
            window_start=deployment.stage_started_at,
            side=_TOTALS,
            summary={},
        )
        session.add(row)
        current = _Totals(through=window_start)
    else:
        row, current = found
    current = _Totals(
        through=window_start,
        first=current.first.merge(sides[0]),
        second=current.second.merge(sides[1]),
    )
    row.summary = msgspec.to_builtins(current)
    totals[deployment.stage] = (row, current)
    return True  # written with the transaction's next flush, with every task's rows at once


def _candidate(decision: Decision) -> str | None:
    model = decision.action.get("model")
    return model if isinstance(model, str) else None


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
    totals = _load_totals(session, [d.id for d in deployments])
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
    model = _candidate(decision)
    if watching:
        sides = watch_sides(windows, _holdback_version(session, deployment), model)
    else:
        sides = rollout_sides(windows, deployment.canary_version, model)
    if not _add_period(session, totals, deployment, window_start, sides):
        return None
    if watching:
        judgement, against = _judge_watch(totals, deployment, settings, tolerance)
    else:
        strata = [(t.first, t.second) for stage, (_, t) in sorted(totals.items())]
        judgement = judge(
            strata, settings, tolerance=tolerance, pairs=shadow_pairs([b for b, _ in strata], model)
        )
    judged = totals[deployment.stage][1].second
    outcome, checks, reason = judgement.outcome, judgement.checks, judgement.reason
    if watching:
        reason = f"{reason} (promoted config against {against})"
    plan = plan_checks(judged, decision.rollback_plan, settings)
    broken = [c.metric for c in plan if c.passed is False]
    checks += plan
    if broken:
        reason = (
            "rollback plan: " + ", ".join(broken) + (f"; {reason}" if outcome == "fail" else "")
        )
        outcome = "fail"
    elapsed = window_end - deployment.started_at
    eta = None if watching else _eta_check(judgement, tolerance, settings, elapsed)
    if eta is not None:
        checks += (eta,)
        if outcome == "inconclusive":
            reason = f"{reason}; {eta.detail}"
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
    add_verdict(session, verdict, known_new=True)  # _add_period saw this period first
    held = window_end - deployment.stage_started_at
    after = deployment
    if outcome == "fail":
        what = "after promotion" if watching else f"at {deployment.weight:.0%}"
        after, _ = rollback_deployment(
            session,
            deployment.id,
            actor=CONTROLLER,
            reason=f"verdict fail {what}: {reason}",
            now=window_end,
        )
    elif watching:
        # the watch ends once it has lasted and has seen the promoted config serve (apps apply
        # a new config some time after it is written: a watch of nothing is no watch)
        if held >= settings.post_promotion_watch and judged.calls >= settings.min_samples:
            after = _finish(session, deployment, window_end)
    elif outcome == "pass" and held >= settings.min_stage_duration:
        after = _promote(session, deployment, settings, window_end)
    elif elapsed > settings.max_rollout_duration:
        after, _ = rollback_deployment(
            session,
            deployment.id,
            actor=CONTROLLER,
            reason=f"no verdict within {settings.max_rollout_duration} "
            f"(canary.max_rollout_duration) at {deployment.weight:.0%}: {reason}",
            now=window_end,
        )
    elif held >= settings.min_stage_duration:
        band = judgement.quality
        weight = planned_weight(
            ladder(settings.stages),
            deployment.weight,
            band,
            settings.risk_budget,
            stage_passed=outcome == "pass",
            harm_checked=any(c.metric == "samples" and c.passed for c in checks),
        )
        if weight > deployment.weight:
            why = (
                f"expected quality loss {expected_loss(band):.4f} per canary call, risk budget "
                f"{settings.risk_budget:g}"
                if band is not None
                else "the stage passed"
            )
            after = _advance(session, deployment, weight, window_end, why)
    _notify_verdict(session, deployment, after, verdict)
    return verdict


def _judge_watch(
    totals: _Loaded,
    deployment: Deployment,
    settings: CanarySettings,
    tolerance: float,
) -> tuple[Judgement, str]:
    """The promoted config judged against a reference, and what that reference is.

    The reference is the holdback once it has ``min_samples`` calls, else what the old config
    served before promotion. After promotion the promoted config serves the ``baseline``
    variant and the holdback (the old config, on ``canary.holdback`` of calls) the ``canary``
    variant. The holdback is a concurrent control: an incident that hits both sides (a provider
    slowing down) is not blamed on the change.
    """
    watch = totals[deployment.stage][1]
    if watch.first.calls >= settings.min_samples:
        return judge([(watch.first, watch.second)], settings, tolerance=tolerance), "the holdback"
    before = SideSummary()
    for stage, (_, t) in totals.items():
        if stage != deployment.stage:
            before = before.merge(t.first)
    return (
        judge([(before, watch.second)], settings, tolerance=tolerance),
        "the baseline before promotion",
    )


def _eta_check(
    judgement: Judgement, tolerance: float, settings: CanarySettings, elapsed: timedelta
) -> MetricCheck | None:
    """The projected time until the quality band decides, as a check that explains itself."""
    band = judgement.quality
    if band is None or judgement.outcome != "inconclusive":
        return None
    eta = time_to_verdict(band, tolerance, settings.alpha, elapsed)
    if eta is None:
        return None
    never = eta == timedelta.max
    hours = None if never else eta.total_seconds() / 3600
    return MetricCheck(
        metric="expected_time_to_verdict_h",
        baseline=None,
        canary=hours,
        threshold=settings.max_rollout_duration.total_seconds() / 3600,
        test="projection",
        statistic=band.information,
        detail=(
            "the quality estimate sits on the tolerance: no amount of data decides it"
            if never
            else f"a quality verdict expected in {hours:.1f} h at the current information "
            f"rate ({band.information:.0f} gathered in {elapsed.total_seconds() / 3600:.1f} h)"
        ),
    )


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
