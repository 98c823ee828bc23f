"""Decisions, deployments and verdicts (CONTRACT.md §3): the closed loop's records.

A strategy proposes a :class:`Decision`; the canary controller turns it into a
:class:`Deployment` that walks through weight stages; the judge gives a :class:`Verdict` per
stage with every metric's :class:`MetricCheck` (values, threshold, statistic, p-value).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

__all__ = [
    "DECISION_STATUSES",
    "DEPLOYMENT_STATUSES",
    "STRATEGIES",
    "Decision",
    "DecisionStatus",
    "Deployment",
    "DeploymentStatus",
    "ExpectedImpact",
    "MetricCheck",
    "RollbackLimit",
    "Strategy",
    "Verdict",
    "VerdictOutcome",
    "stable_id",
]

Strategy = Literal[
    "model_selection", "caching", "rate_limiting", "batching", "prompt_optimization", "rollback"
]
STRATEGIES: tuple[Strategy, ...] = (
    "model_selection",
    "caching",
    "rate_limiting",
    "batching",
    "prompt_optimization",
    "rollback",
)
DecisionStatus = Literal["proposed", "canary", "promoted", "rolled_back", "rejected", "applied"]
DECISION_STATUSES: tuple[DecisionStatus, ...] = (
    "proposed",
    "canary",
    "promoted",
    "rolled_back",
    "rejected",
    "applied",
)
DeploymentStatus = Literal["running", "paused", "watching", "promoted", "rolled_back"]
DEPLOYMENT_STATUSES: tuple[DeploymentStatus, ...] = (
    "running",
    "paused",
    "watching",
    "promoted",
    "rolled_back",
)
VerdictOutcome = Literal["pass", "fail", "inconclusive"]

_NAMESPACE = uuid.UUID("0b7f8a52-0c3e-4f5e-8f0a-6a1d2c3b4e5f")


def stable_id(*parts: object) -> str:
    """A UUID derived from ``parts``: the same decision in a replay gets the same id."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(str(p) for p in parts)))


class ExpectedImpact(msgspec.Struct, frozen=True, kw_only=True):
    """What a decision should change: relative cost and latency, absolute quality."""

    cost_change_pct: float = 0.0
    latency_change_pct: float = 0.0
    quality_change: float = 0.0


class RollbackLimit(msgspec.Struct, frozen=True, kw_only=True):
    """One limit of a rollback plan: undo the change when ``metric`` crosses ``limit``.

    ``direction`` is ``"max"`` (roll back above the limit) or ``"min"`` (below it).
    """

    metric: str
    limit: float
    direction: Literal["max", "min"] = "max"


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """A concrete change proposed for one (app, task), with the numbers behind it."""

    id: str
    created_at: datetime
    app: str
    task: str
    strategy: Strategy
    action: dict[str, Any]
    rationale: str
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)
    expected_impact: ExpectedImpact = ExpectedImpact()
    confidence: float = 0.0
    status: DecisionStatus = "proposed"
    deployment_id: str | None = None
    rollback_plan: tuple[RollbackLimit, ...] = ()


class MetricCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One metric of a verdict: both sides, the gate or test, and whether it passed.

    ``passed`` is ``None`` when the metric could not be judged (too few samples).
    """

    metric: str
    baseline: float | None
    canary: float | None
    threshold: float | None = None
    test: str = "gate"
    statistic: float | None = None
    p_value: float | None = None
    baseline_n: int = 0
    canary_n: int = 0
    passed: bool | None = None
    detail: str = ""
    lower: float | None = None
    """Low end of the statistic's anytime-valid band (None: no band, or unbounded)."""
    upper: float | None = None
    """High end of that band."""


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """The judge's verdict on one stage of a deployment."""

    id: str
    deployment_id: str
    stage: int
    weight: float
    outcome: VerdictOutcome
    window_start: datetime
    window_end: datetime
    checks: tuple[MetricCheck, ...]
    reason: str
    created_at: datetime


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    """A decision rolled out as a canary through weight stages."""

    id: str
    decision_id: str
    app: str
    task: str
    status: DeploymentStatus
    stage: int
    weight: float
    baseline_version: int
    canary_version: int
    started_at: datetime
    stage_started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    reason: str = ""
    verdicts: tuple[Verdict, ...] = ()
