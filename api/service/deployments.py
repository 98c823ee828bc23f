"""Deployments (canaries) and their verdicts behind ``/api/v1/deployments``."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from sqlalchemy import Engine

from core.decisions import DEPLOYMENT_STATUSES, Deployment
from core.errors import ValidationError
from storage.database import session_scope
from storage.decisions import get_deployment, list_deployments

__all__ = ["DeploymentPage", "DeploymentQueries"]


class DeploymentPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of deployments (without verdicts) and the next page's cursor."""

    items: list[Deployment]
    next_cursor: str | None


class DeploymentQueries:
    """Lists deployments and shows one with every verdict."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list(
        self,
        *,
        app: str | None = None,
        task: str | None = None,
        status: Sequence[str] | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> DeploymentPage:
        """Deployments newest first."""
        if not 1 <= limit <= 500:
            raise ValidationError(f"limit must be between 1 and 500, not {limit}")
        bad = [s for s in status or () if s not in DEPLOYMENT_STATUSES]
        if bad:
            raise ValidationError(f"unknown status {bad[0]!r}")
        with session_scope(self._engine) as session:
            items, next_cursor = list_deployments(
                session, app=app, task=task, status=status, cursor=cursor, limit=limit
            )
        return DeploymentPage(items=items, next_cursor=next_cursor)

    def get(self, deployment_id: str) -> Deployment:
        """One deployment: stage, weight, every verdict with its metric checks."""
        with session_scope(self._engine) as session:
            return get_deployment(session, deployment_id)
