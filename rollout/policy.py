"""The rollout policy, pure: what one period's totals mean for a deployment, and what comes next.

:func:`step` takes a deployment, its decision, the running totals of every weight it has served
(through the period just closed) and the period's end, and returns the verdict (outcome, checks,
reason) with the :class:`Transition` it leads to. No database, no clock: ``rollout.stages``
loads and stores, this decides.

- **fail** (a gate, a harm test, quality shown worse than the tolerance, or the decision's
  rollback plan) → ``rollback``;
- **pass**, held at least ``canary.min_stage_duration`` → ``promote`` (the deployment is then
  watched against a holdback for ``canary.post_promotion_watch``);
- **inconclusive** → ``hold``, or ``advance`` to the weight
  :func:`operators.exposure.planned_weight` allows once the stage has lasted its minimum; no
  verdict within ``canary.max_rollout_duration`` → ``rollback``. Every inconclusive verdict
  projects the time to a decision.
- while watched, the promoted config is judged the same way: a fail rolls back; ``finish`` once
  the watch has lasted and has seen the promoted config serve ``canary.min_samples`` calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from core.decisions import Decision, Deployment, MetricCheck, VerdictOutcome
from core.settings import CanarySettings
from operators.exposure import expected_loss, ladder, planned_weight, time_to_verdict
from operators.judge import Judgement, guarded_metrics, judge, plan_checks
from operators.side_summary import SideSummary
from rollout.sides import shadow_pairs

__all__ = ["RolloutTotals", "Step", "Transition", "candidate_model", "step"]


class RolloutTotals(msgspec.Struct, kw_only=True):
    """One weight's running totals: both sides, and the last period they include."""

    through: datetime
    first: SideSummary = msgspec.field(default_factory=SideSummary)  # baseline or holdback
    second: SideSummary = msgspec.field(default_factory=SideSummary)  # canary or promoted


@dataclass(frozen=True, slots=True)
class Transition:
    """What happens to the deployment after a verdict.

    Attributes:
        kind: ``hold`` (nothing changes), ``advance`` (a higher canary weight), ``promote``,
            ``finish`` (the watch passed) or ``rollback``.
        weight: The weight after an ``advance``; the current weight otherwise.
        why: Why: the rollback's reason, or what allowed the higher weight.
    """

    kind: Literal["hold", "advance", "promote", "finish", "rollback"]
    weight: float
    why: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """A period's verdict and its consequence."""

    outcome: VerdictOutcome
    checks: tuple[MetricCheck, ...]
    reason: str
    transition: Transition


def candidate_model(decision: Decision) -> str | None:
    """The model a decision switches to, if it is a model change."""
    model = decision.action.get("model")
    return model if isinstance(model, str) else None


def step(
    deployment: Deployment,
    decision: Decision,
    totals: Mapping[int, RolloutTotals],
    now: datetime,
    settings: CanarySettings,
    tolerance: float,
) -> Step:
    """Judge everything served so far and decide the deployment's next state.

    Args:
        deployment: A running, paused or watched deployment, as stored.
        decision: Its decision (the candidate model, the rollback plan).
        totals: Running totals by stage, the current stage included (through this period).
        now: The end of the period just closed (event time).
        settings: The canary settings.
        tolerance: The quality tolerance (``decisions.quality_tolerance``).
    """
    watching = deployment.status == "watching"
    guarded = guarded_metrics(decision.strategy)
    if watching:
        judgement, against = _judge_watch(totals, deployment, settings, tolerance, guarded)
    else:
        strata = [(t.first, t.second) for _, t in sorted(totals.items())]
        pairs = shadow_pairs([b for b, _ in strata], candidate_model(decision))
        judgement = judge(strata, settings, tolerance=tolerance, pairs=pairs, guarded=guarded)
    judged = totals[deployment.stage].second
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
    elapsed = now - deployment.started_at
    eta = None if watching else _eta_check(judgement, tolerance, settings, elapsed)
    if eta is not None:
        checks += (eta,)
        if outcome == "inconclusive":
            reason = f"{reason}; {eta.detail}"
    transition = _transition(deployment, outcome, reason, checks, judgement, judged, now, settings)
    return Step(outcome, checks, reason, transition)


def _transition(
    deployment: Deployment,
    outcome: VerdictOutcome,
    reason: str,
    checks: tuple[MetricCheck, ...],
    judgement: Judgement,
    judged: SideSummary,
    now: datetime,
    settings: CanarySettings,
) -> Transition:
    held = now - deployment.stage_started_at
    elapsed = now - deployment.started_at
    weight = deployment.weight
    if outcome == "fail":
        what = "after promotion" if deployment.status == "watching" else f"at {weight:.0%}"
        return Transition("rollback", weight, f"verdict fail {what}: {reason}")
    if deployment.status == "watching":
        # the watch ends once it has lasted and has seen the promoted config serve (apps apply
        # a new config some time after it is written: a watch of nothing is no watch)
        done = held >= settings.post_promotion_watch and judged.calls >= settings.min_samples
        return Transition("finish" if done else "hold", weight)
    if outcome == "pass" and held >= settings.min_stage_duration:
        return Transition("promote", weight)
    if elapsed > settings.max_rollout_duration:
        return Transition(
            "rollback",
            weight,
            f"no verdict within {settings.max_rollout_duration} "
            f"(canary.max_rollout_duration) at {weight:.0%}: {reason}",
        )
    if held < settings.min_stage_duration:
        return Transition("hold", weight)
    band = judgement.quality
    planned = planned_weight(
        ladder(settings.stages),
        weight,
        band,
        settings.risk_budget,
        stage_passed=outcome == "pass",
        harm_checked=any(c.metric == "samples" and c.passed for c in checks),
    )
    if planned <= weight:
        return Transition("hold", weight)
    why = (
        f"expected quality loss {expected_loss(band):.4f} per canary call, risk budget "
        f"{settings.risk_budget:g}"
        if band is not None
        else "the stage passed"
    )
    return Transition("advance", planned, why)


def _judge_watch(
    totals: Mapping[int, RolloutTotals],
    deployment: Deployment,
    settings: CanarySettings,
    tolerance: float,
    guarded: frozenset[str],
) -> tuple[Judgement, str]:
    """The promoted config judged against a reference, and what that reference is.

    The reference is the holdback once it has ``min_samples`` calls, else what the old config
    served before promotion. After promotion the promoted config serves the ``baseline``
    variant and the holdback (the old config, on ``canary.holdback`` of calls) the ``canary``
    variant. The holdback is a concurrent control: an incident that hits both sides (a provider
    slowing down) is not blamed on the change.
    """
    watch = totals[deployment.stage]
    if watch.first.calls >= settings.min_samples:
        found = judge([(watch.first, watch.second)], settings, tolerance=tolerance, guarded=guarded)
        return found, "the holdback"
    before = SideSummary()
    for stage, t in totals.items():
        if stage != deployment.stage:
            before = before.merge(t.first)
    return (
        judge([(before, watch.second)], settings, tolerance=tolerance, guarded=guarded),
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
