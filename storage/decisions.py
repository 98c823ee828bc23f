"""Decisions, deployments and verdicts in the database (``core.decisions``).

Every function works in the caller's session, so the actuator writes a decision, its config
change, its verdict and the outbox row in one transaction. Ids are stable across replays, and
inserts of a known id change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from core.decisions import (
    Decision,
    DecisionStatus,
    Deployment,
    ExpectedImpact,
    MetricCheck,
    RollbackLimit,
    Verdict,
)
from core.errors import NotFoundError
from storage.models import DecisionRow, DeploymentRow, VerdictRow
from storage.paging import decode_cursor, encode_cursor

__all__ = [
    "DecisionPage",
    "add_verdict",
    "decision_of_row",
    "deployment_for",
    "get_decision",
    "get_decisions",
    "get_deployment",
    "last_decision_at",
    "list_decisions",
    "list_deployments",
    "open_deployments",
    "revise_decision",
    "save_decision",
    "save_deployment",
    "set_decision_status",
]


class DecisionPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of decisions and the cursor of the next (``None`` on the last page)."""

    items: list[Decision]
    next_cursor: str | None


def decision_of_row(r: DecisionRow) -> Decision:
    """The decision a stored row holds."""
    return Decision(
        id=r.id,
        created_at=r.created_at,
        app=r.app,
        task=r.task,
        strategy=r.strategy,  # type: ignore[arg-type]
        action=dict(r.action),
        rationale=r.rationale,
        evidence=dict(r.evidence),
        expected_impact=msgspec.convert(r.expected_impact, ExpectedImpact),
        confidence=r.confidence,
        status=r.status,  # type: ignore[arg-type]
        deployment_id=r.deployment_id,
        rollback_plan=msgspec.convert(r.rollback_plan, tuple[RollbackLimit, ...]),
    )


def save_decision(session: Session, decision: Decision, *, now: datetime) -> bool:
    """Insert ``decision`` unless its id is stored; True when it was new."""
    if session.get(DecisionRow, decision.id) is not None:
        return False
    session.add(
        DecisionRow(
            id=decision.id,
            created_at=decision.created_at,
            app=decision.app,
            task=decision.task,
            strategy=decision.strategy,
            action=msgspec.to_builtins(decision.action),
            rationale=decision.rationale,
            evidence=msgspec.to_builtins(decision.evidence),
            expected_impact=msgspec.to_builtins(decision.expected_impact),
            confidence=decision.confidence,
            status=decision.status,
            deployment_id=decision.deployment_id,
            rollback_plan=msgspec.to_builtins(decision.rollback_plan),
            updated_at=now,
        )
    )
    session.flush()
    return True


def get_decision(session: Session, decision_id: str) -> Decision:
    """One decision.

    Raises:
        NotFoundError: When no decision has this id.
    """
    row = session.get(DecisionRow, decision_id)
    if row is None:
        raise NotFoundError(f"no decision {decision_id!r}")
    return decision_of_row(row)


def get_decisions(session: Session, decision_ids: Sequence[str]) -> dict[str, Decision]:
    """The decisions of these ids that exist, by id (one query)."""
    if not decision_ids:
        return {}
    rows = session.scalars(select(DecisionRow).where(DecisionRow.id.in_(list(decision_ids))))
    return {r.id: decision_of_row(r) for r in rows}


def set_decision_status(
    session: Session,
    decision_id: str,
    status: DecisionStatus,
    *,
    now: datetime,
    deployment_id: str | None = None,
) -> Decision:
    """Change a decision's status (and link its deployment)."""
    row = session.get(DecisionRow, decision_id)
    if row is None:
        raise NotFoundError(f"no decision {decision_id!r}")
    row.status = status
    if deployment_id is not None:
        row.deployment_id = deployment_id
    row.updated_at = now
    session.flush()
    return decision_of_row(row)


def list_decisions(
    session: Session,
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
    stmt = select(DecisionRow)
    if app is not None:
        stmt = stmt.where(DecisionRow.app == app)
    if task is not None:
        stmt = stmt.where(DecisionRow.task == task)
    if strategy is not None:
        stmt = stmt.where(DecisionRow.strategy == strategy)
    if status:
        stmt = stmt.where(DecisionRow.status.in_(list(status)))
    if since is not None:
        stmt = stmt.where(DecisionRow.created_at >= since)
    if until is not None:
        stmt = stmt.where(DecisionRow.created_at < until)
    if cursor is not None:
        at, key = decode_cursor(cursor)
        stmt = stmt.where(tuple_(DecisionRow.created_at, DecisionRow.id) < tuple_(at, key))
    stmt = stmt.order_by(DecisionRow.created_at.desc(), DecisionRow.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    items = [decision_of_row(r) for r in rows[:limit]]
    last = items[-1] if more and items else None
    return DecisionPage(
        items=items,
        next_cursor=None if last is None else encode_cursor(last.created_at, last.id),
    )


def _verdict(r: VerdictRow) -> Verdict:
    return Verdict(
        id=r.id,
        deployment_id=r.deployment_id,
        stage=r.stage,
        weight=r.weight,
        outcome=r.outcome,  # type: ignore[arg-type]
        window_start=r.window_start,
        window_end=r.window_end,
        checks=msgspec.convert(r.checks, tuple[MetricCheck, ...]),
        reason=r.reason,
        created_at=r.created_at,
    )


def _deployment(session: Session, r: DeploymentRow, *, verdicts: bool) -> Deployment:
    found: tuple[Verdict, ...] = ()
    if verdicts:
        rows = session.scalars(
            select(VerdictRow)
            .where(VerdictRow.deployment_id == r.id)
            .order_by(VerdictRow.created_at, VerdictRow.id)
        )
        found = tuple(_verdict(v) for v in rows)
    return Deployment(
        id=r.id,
        decision_id=r.decision_id,
        app=r.app,
        task=r.task,
        status=r.status,  # type: ignore[arg-type]
        stage=r.stage,
        weight=r.weight,
        baseline_version=r.baseline_version,
        canary_version=r.canary_version,
        started_at=r.started_at,
        stage_started_at=r.stage_started_at,
        updated_at=r.updated_at,
        finished_at=r.finished_at,
        reason=r.reason,
        verdicts=found,
    )


def save_deployment(session: Session, deployment: Deployment) -> None:
    """Insert or update a deployment (its verdicts are added with :func:`add_verdict`)."""
    row = session.get(DeploymentRow, deployment.id)
    if row is None:
        row = DeploymentRow(id=deployment.id, decision_id=deployment.decision_id)
        session.add(row)
    row.app = deployment.app
    row.task = deployment.task
    row.status = deployment.status
    row.stage = deployment.stage
    row.weight = deployment.weight
    row.baseline_version = deployment.baseline_version
    row.canary_version = deployment.canary_version
    row.started_at = deployment.started_at
    row.stage_started_at = deployment.stage_started_at
    row.updated_at = deployment.updated_at
    row.finished_at = deployment.finished_at
    row.reason = deployment.reason[:2048]
    session.flush()


def get_deployment(session: Session, deployment_id: str, *, verdicts: bool = True) -> Deployment:
    """One deployment, with every verdict unless ``verdicts`` is False.

    Raises:
        NotFoundError: When no deployment has this id.
    """
    row = session.get(DeploymentRow, deployment_id)
    if row is None:
        raise NotFoundError(f"no deployment {deployment_id!r}")
    return _deployment(session, row, verdicts=verdicts)


def deployment_for(session: Session, decision_id: str) -> Deployment | None:
    """The deployment of a decision, if it has one."""
    row = session.scalars(
        select(DeploymentRow).where(DeploymentRow.decision_id == decision_id)
    ).first()
    return None if row is None else _deployment(session, row, verdicts=True)


def list_deployments(
    session: Session,
    *,
    app: str | None = None,
    task: str | None = None,
    status: Sequence[str] | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Deployment], str | None]:
    """Deployments (without verdicts), newest first, and the next page's cursor."""
    stmt = select(DeploymentRow)
    if app is not None:
        stmt = stmt.where(DeploymentRow.app == app)
    if task is not None:
        stmt = stmt.where(DeploymentRow.task == task)
    if status:
        stmt = stmt.where(DeploymentRow.status.in_(list(status)))
    if cursor is not None:
        at, key = decode_cursor(cursor)
        stmt = stmt.where(tuple_(DeploymentRow.started_at, DeploymentRow.id) < tuple_(at, key))
    stmt = stmt.order_by(DeploymentRow.started_at.desc(), DeploymentRow.id.desc())
    rows = list(session.scalars(stmt.limit(limit + 1)))
    items = [_deployment(session, r, verdicts=False) for r in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_cursor(items[-1].started_at, items[-1].id) if more and items else None
    return items, next_cursor


def open_deployments(session: Session) -> list[Deployment]:
    """Deployments still running, paused or watched after promotion, with their verdicts."""
    rows = session.scalars(
        select(DeploymentRow)
        .where(DeploymentRow.status.in_(["running", "paused", "watching"]))
        .order_by(DeploymentRow.started_at)
    )
    return [_deployment(session, r, verdicts=True) for r in rows]


def add_verdict(session: Session, verdict: Verdict, *, known_new: bool = False) -> bool:
    """Store a verdict unless its id is stored; True when it was new.

    ``known_new``: the caller knows the id is new (skips the lookup and the flush; the insert
    goes out with the transaction's next flush).
    """
    if known_new:
        session.add(_verdict_row(verdict))
        return True
    if session.get(VerdictRow, verdict.id) is not None:
        return False
    session.add(_verdict_row(verdict))
    session.flush()
    return True


def _verdict_row(verdict: Verdict) -> VerdictRow:
    return VerdictRow(
        id=verdict.id,
        deployment_id=verdict.deployment_id,
        stage=verdict.stage,
        weight=verdict.weight,
        outcome=verdict.outcome,
        window_start=verdict.window_start,
        window_end=verdict.window_end,
        checks=msgspec.to_builtins(verdict.checks),
        reason=verdict.reason[:2048],
        created_at=verdict.created_at,
    )


def revise_decision(
    session: Session,
    decision_id: str,
    *,
    action: dict[str, object],
    evidence: dict[str, object],
    now: datetime,
) -> Decision:
    """Replace a proposed decision's action and evidence (a rewrite filled in before rollout)."""
    row = session.get(DecisionRow, decision_id)
    if row is None:
        raise NotFoundError(f"no decision {decision_id!r}")
    row.action = msgspec.to_builtins(action)
    row.evidence = msgspec.to_builtins(evidence)
    row.updated_at = now
    session.flush()
    return decision_of_row(row)


def last_decision_at(session: Session, app: str, task: str) -> datetime | None:
    """When the task's newest decision that was not rejected was made."""
    return session.scalar(
        select(DecisionRow.created_at)
        .where(DecisionRow.app == app, DecisionRow.task == task, DecisionRow.status != "rejected")
        .order_by(DecisionRow.created_at.desc())
        .limit(1)
    )
