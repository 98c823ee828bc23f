"""The rollout page's data: a decision, its stages, every check in words and as a band chart.

A band chart places the check's statistic, its band (``lower``..``upper``), the threshold and
zero on one axis; :class:`BandGeometry` holds those positions as fractions of the chart's width
so the template draws it as SVG (no script needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.decisions import Decision, Deployment, MetricCheck, Verdict

__all__ = [
    "ACTIONS",
    "BandGeometry",
    "CheckView",
    "RolloutView",
    "StageView",
    "allowed_actions",
    "band_geometry",
    "build_rollout",
    "check_sentence",
    "expected_verdict",
]

#: The actions a page may offer, in button order.
ACTIONS = ("approve", "reject", "rollback")
_ETA_METRIC = "expected_time_to_verdict_h"
_OPEN = ("running", "paused", "watching")


@dataclass(frozen=True)
class BandGeometry:
    """Positions in [0, 1] along a chart axis running from ``low`` to ``high``."""

    low: float
    high: float
    statistic: float | None
    band_from: float | None
    band_to: float | None
    threshold: float | None
    zero: float | None


def _finite(*values: float | None) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def band_geometry(check: MetricCheck) -> BandGeometry | None:
    """Where to draw a check with a statistic or band (``None``: a plain gate, nothing to draw)."""
    if check.statistic is None and check.lower is None and check.upper is None:
        return None
    points = _finite(check.statistic, check.lower, check.upper, check.threshold, 0.0)
    low, high = min(points), max(points)
    pad = (high - low) * 0.1 or max(abs(high), 1e-3) * 0.1
    low, high = low - pad, high + pad

    def at(value: float | None) -> float | None:
        if value is None or not math.isfinite(value):
            return None
        return (value - low) / (high - low)

    band_from = at(check.lower) if check.lower is not None else 0.0
    band_to = at(check.upper) if check.upper is not None else 1.0
    has_band = check.lower is not None or check.upper is not None
    return BandGeometry(
        low=low,
        high=high,
        statistic=at(check.statistic),
        band_from=band_from if has_band else None,
        band_to=band_to if has_band else None,
        threshold=at(check.threshold),
        zero=at(0.0),
    )


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def check_sentence(check: MetricCheck) -> str:
    """The check in one sentence: both sides, the test, its outcome and p-value."""
    outcome = {True: "passed", False: "failed", None: "undecided"}[check.passed]
    parts = [
        f"{check.metric}: canary {_num(check.canary)} (n={check.canary_n}) against baseline "
        f"{_num(check.baseline)} (n={check.baseline_n})"
    ]
    if check.statistic is not None:
        parts.append(f"statistic {_num(check.statistic)}")
    if check.lower is not None or check.upper is not None:
        parts.append(f"band [{_num(check.lower)}, {_num(check.upper)}]")
    if check.threshold is not None:
        parts.append(f"threshold {_num(check.threshold)}")
    if check.p_value is not None:
        parts.append(f"p = {_num(check.p_value)}")
    return f"{', '.join(parts)}; {check.test} {outcome}."


@dataclass(frozen=True)
class CheckView:
    """A check with its sentence and chart."""

    check: MetricCheck
    sentence: str
    geometry: BandGeometry | None
    outcome: str


@dataclass(frozen=True)
class StageView:
    """One weight of the rollout: its verdicts, newest first, the latest in full."""

    stage: int
    weight: float
    verdicts: list[Verdict]
    latest: Verdict
    checks: list[CheckView]


@dataclass(frozen=True)
class RolloutView:
    """Everything the rollout page shows about one decision."""

    decision: Decision
    deployment: Deployment | None
    stages: list[StageView]
    eta_hours: float | None
    eta_detail: str
    actions: tuple[str, ...]


def _check_view(check: MetricCheck) -> CheckView:
    return CheckView(
        check=check,
        sentence=check_sentence(check),
        geometry=band_geometry(check),
        outcome={True: "pass", False: "fail", None: "undecided"}[check.passed],
    )


def _stages(verdicts: Sequence[Verdict]) -> list[StageView]:
    by_stage: dict[int, list[Verdict]] = {}
    for v in verdicts:
        by_stage.setdefault(v.stage, []).append(v)
    out = []
    for stage, found in sorted(by_stage.items(), reverse=True):
        found.sort(key=lambda v: (v.window_end, v.created_at), reverse=True)
        latest = found[0]
        out.append(
            StageView(
                stage=stage,
                weight=latest.weight,
                verdicts=found,
                latest=latest,
                checks=[_check_view(c) for c in latest.checks if c.metric != _ETA_METRIC],
            )
        )
    return out


def expected_verdict(decision: Decision, deployment: Deployment | None) -> tuple[float | None, str]:
    """Hours until a verdict and how that was projected (latest verdict, else the proposal)."""
    if deployment is not None and deployment.status in _OPEN:
        latest: Verdict | None = max(
            deployment.verdicts, key=lambda v: (v.window_end, v.created_at), default=None
        )
        for c in latest.checks if latest is not None else ():
            if c.metric == _ETA_METRIC:
                return c.canary, c.detail
        if latest is not None:
            return None, f"the latest verdict is {latest.outcome}: {latest.reason}"
    if deployment is not None and deployment.status not in _OPEN:
        return None, f"decided: {deployment.status} ({deployment.reason})"
    hours = decision.evidence.get(_ETA_METRIC)
    basis = str(decision.evidence.get("expected_time_to_verdict_basis", ""))
    if isinstance(hours, int | float):
        return float(hours), basis or "projected when the decision was made"
    return None, "no projection recorded"


def allowed_actions(
    decision: Decision, deployment: Deployment | None, can_act: bool
) -> tuple[str, ...]:
    """Which buttons the page shows: none for viewers; what the decision's state allows."""
    if not can_act:
        return ()
    if decision.status == "proposed":
        return ("approve", "reject")
    if deployment is not None and deployment.status in _OPEN:
        return ("rollback",)
    return ()


def build_rollout(
    decision: Decision, deployment: Deployment | None, *, can_act: bool
) -> RolloutView:
    """The page's view of ``decision`` and its deployment."""
    hours, detail = expected_verdict(decision, deployment)
    return RolloutView(
        decision=decision,
        deployment=deployment,
        stages=_stages(deployment.verdicts) if deployment is not None else [],
        eta_hours=hours,
        eta_detail=detail,
        actions=allowed_actions(decision, deployment, can_act),
    )
