"""Recommendations (the strategies' decisions) behind ``/api/v1/optimize``.

Lists and shows decisions with their evidence and deployment; runs an on-demand analysis of
stored tumbling windows through the same analyzers and strategies as the dataflow; approves,
rejects and rolls back through the actuator (``rollout.canary_controller``, ``rollout.rollback``),
which writes the decision, deployment, config version, audit line and outbox row in one
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import msgspec
from sqlalchemy import Engine

from core.app_config import TaskConfig
from core.decisions import DECISION_STATUSES, STRATEGIES, Decision, Deployment
from core.errors import ValidationError
from core.insights import Insight, WindowGroup
from core.settings import Settings
from core.stats import WindowStats
from operators.analyzers import AnalysisRunner, build_analyzers
from operators.strategies import StrategyRunner, build_strategies
from rollout.canary_controller import approve_decision, reject_decision
from rollout.rollback import rollback_deployment
from storage.configs import active_config
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
    """What the strategies would propose, period by period (not coordinated, not stored)."""


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
        """Run the analyzers and strategies over stored tumbling windows, period by period.

        Analyzers and strategies start from fresh state, so the range should hold enough windows for
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
        analysis = AnalysisRunner(build_analyzers(self._settings))
        strategies = StrategyRunner(build_strategies(self._settings))
        configs = self._configs(app)
        periods: dict[datetime, list[WindowStats]] = {}
        for w in windows:
            periods.setdefault(w.window_start, []).append(w)
        insights: list[Insight] = []
        proposals: list[Decision] = []
        for start, group in sorted(periods.items()):
            found = analysis.take(group) + analysis.flush()
            insights += found
            period = WindowGroup(
                app=app, window_start=start, window_end=group[0].window_end, windows=group
            )
            proposals += strategies.take(period, found, configs)
        return Analysis(
            app=app,
            task=task,
            since=since,
            until=until,
            windows=len(windows),
            insights=insights,
            proposals=proposals,
        )

    def _configs(self, app: str) -> dict[str, TaskConfig]:
        with session_scope(self._engine) as session:
            found = active_config(session, app)
        return dict(found.tasks) if found is not None else {}

    def approve(self, decision_id: str, *, actor: str) -> Decision:
        """Start the decision's canary (or apply it) through the canary controller."""
        with session_scope(self._engine) as session:
            return approve_decision(
                session, decision_id, actor=actor, now=self._clock(), settings=self._settings.canary
            )

    def reject(self, decision_id: str, *, actor: str, reason: str) -> Decision:
        """Reject a proposed decision."""
        with session_scope(self._engine) as session:
            return reject_decision(
                session, decision_id, actor=actor, reason=reason, now=self._clock()
            )

    def rollback(self, decision_id: str, *, actor: str, reason: str) -> Deployment:
        """Roll back the deployment of a decision."""
        with session_scope(self._engine) as session:
            get_decision(session, decision_id)  # NotFoundError for an unknown id
            deployment = deployment_for(session, decision_id)
            if deployment is None:
                raise ValidationError(f"decision {decision_id!r} has no deployment to roll back")
            rolled_back, _ = rollback_deployment(
                session, deployment.id, actor=actor, reason=reason, now=self._clock()
            )
        return rolled_back
