"""Recommendations (the strategies' decisions) behind ``/api/v1/optimize``.

Lists and shows decisions with their evidence and deployment; runs an on-demand analysis of
stored tumbling windows through the same analyzers (and, when available, strategies) as the
dataflow; approves, rejects and rolls back through the actuator (``sinks.canary_controller``,
``sinks.rollback``), which write the decision, deployment, config version, audit line and
outbox row in one transaction.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Engine

from core.decisions import DECISION_STATUSES, STRATEGIES, Decision, Deployment
from core.errors import StorageUnavailableError, ValidationError
from core.insights import Insight
from core.settings import Settings
from operators.analyzers import AnalysisRunner, build_analyzers
from storage.database import session_scope
from storage.decisions import DecisionPage, deployment_for, get_decision, list_decisions
from storage.windows import WindowRepository

__all__ = ["Analysis", "RecommendationDetail", "RecommendationService"]

MAX_ANALYSIS_WINDOWS = 10_000


class RecommendationDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A decision with its evidence and, once approved, its deployment and verdicts."""

    decision: Decision
    deployment: Deployment | None


class Analysis(msgspec.Struct, frozen=True, kw_only=True):
    """What an on-demand analysis found over stored windows."""

    app: str
    task: str | None
    since: datetime | None
    until: datetime | None
    windows: int
    insights: list[Insight]
    proposals: list[Decision]
    strategies_available: bool


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _actuator(module: str, name: str) -> Callable[..., Any]:
    found = getattr(_optional(module), name, None)
    if found is None:
        raise StorageUnavailableError(f"{module}.{name} is not available on this server")
    return found  # type: ignore[no-any-return]


class RecommendationService:
    """Decisions: list, show, analyze on demand, approve, reject, roll back."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._windows = WindowRepository(engine)
        self._clock = clock

    def list(
        self,
        *,
        app: str | None = None,
        task: str | None = None,
        strategy: str | None = None,
        status: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> DecisionPage:
        """Decisions matching the filters, newest first, one page at a time."""
        if not 1 <= limit <= 500:
            raise ValidationError(f"limit must be between 1 and 500, not {limit}")
        if strategy is not None and strategy not in STRATEGIES:
            raise ValidationError(f"unknown strategy {strategy!r}")
        bad = [s for s in status or () if s not in DECISION_STATUSES]
        if bad:
            raise ValidationError(f"unknown status {bad[0]!r}")
        if since is not None and until is not None and since > until:
            raise ValidationError("since must not be after until")
        with session_scope(self._engine) as session:
            return list_decisions(
                session,
                app=app,
                task=task,
                strategy=strategy,
                status=status,
                since=since,
                until=until,
                cursor=cursor,
                limit=limit,
            )

    def get(self, decision_id: str) -> RecommendationDetail:
        """One decision and its deployment (NotFoundError when unknown)."""
        with session_scope(self._engine) as session:
            decision = get_decision(session, decision_id)
            return RecommendationDetail(
                decision=decision, deployment=deployment_for(session, decision_id)
            )

    def analyze(
        self,
        app: str,
        task: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Analysis:
        """Run the analyzers (and strategies, when present) over stored tumbling windows.

        The analyzers start from fresh baselines, so the range should hold enough windows for
        their warm-up (``analyzers.warmup_windows``). Nothing is stored.
        """
        if not app:
            raise ValidationError("app must not be empty")
        if since is not None and until is not None and since >= until:
            raise ValidationError("since must be before until")
        windows = list(
            self._windows.query(
                app=app,
                task=task,
                kind="tumbling",
                since=since,
                until=until,
                limit=MAX_ANALYSIS_WINDOWS,
            )
        )
        runner = AnalysisRunner(build_analyzers(self._settings))
        insights = runner.take(windows) + runner.flush()
        strategies = _optional("operators.strategies")
        propose = getattr(strategies, "propose", None)
        proposals: list[Decision] = []
        if propose is not None:
            proposals = list(propose(windows, insights, settings=self._settings, now=self._clock()))
        return Analysis(
            app=app,
            task=task,
            since=since,
            until=until,
            windows=len(windows),
            insights=insights,
            proposals=proposals,
            strategies_available=propose is not None,
        )

    def approve(self, decision_id: str, *, actor: str) -> Decision:
        """Start the decision's canary (or apply it) through the canary controller."""
        approve = _actuator("sinks.canary_controller", "approve_decision")
        with session_scope(self._engine) as session:
            result: Decision = approve(
                session, decision_id, actor=actor, now=self._clock(), settings=self._settings
            )
        return result

    def reject(self, decision_id: str, *, actor: str, reason: str) -> Decision:
        """Reject a proposed decision."""
        reject = _actuator("sinks.canary_controller", "reject_decision")
        with session_scope(self._engine) as session:
            result: Decision = reject(
                session, decision_id, actor=actor, reason=reason, now=self._clock()
            )
        return result

    def rollback(self, decision_id: str, *, actor: str, reason: str) -> Deployment:
        """Roll back the deployment of a decision."""
        rollback = _actuator("sinks.rollback", "rollback_deployment")
        with session_scope(self._engine) as session:
            get_decision(session, decision_id)  # NotFoundError for an unknown id
            deployment = deployment_for(session, decision_id)
            if deployment is None:
                raise ValidationError(f"decision {decision_id!r} has no deployment to roll back")
            result: Deployment = rollback(
                session, deployment.id, actor=actor, reason=reason, now=self._clock()
            )
        return result
