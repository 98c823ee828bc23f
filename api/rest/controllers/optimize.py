"""``/api/v1/optimize``: recommendations (decisions), analysis, approve, reject, rollback."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter

from api.rest.auth import principal_of
from api.rest.params import page_limit
from api.rest.resources import resources_of
from api.service import Analysis, RecommendationDetail
from core.decisions import Decision, DecisionStatus, Deployment
from core.decisions import Strategy as StrategyName
from storage.decisions import DecisionPage

__all__ = ["OptimizeController"]

Text = Annotated[str, msgspec.Meta(max_length=2048)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class AnalyzeRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An app (optionally one task) and a time range of stored windows to analyze."""

    app: Name
    task: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    since: datetime | None = None
    until: datetime | None = None


class ActionRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Why an operator rejects or rolls back."""

    reason: Text = ""


_ID = Annotated[str, Parameter(min_length=1, max_length=64)]


class OptimizeController(Controller):
    """What the strategies recommend and what operators decide about it."""

    path = "/api/v1/optimize"
    tags = ["optimize"]

    @get(
        "/recommendations",
        summary="Decisions newest first (filters, cursor pagination)",
        opt={"permission": "recommendations.read"},
    )
    async def list_recommendations(
        self,
        request: Request[Any, Any, Any],
        app: Annotated[str | None, Parameter(max_length=512)] = None,
        task: Annotated[str | None, Parameter(max_length=512)] = None,
        strategy: StrategyName | None = None,
        status: Annotated[list[DecisionStatus] | None, Parameter(description="any of")] = None,
        since: Annotated[datetime | None, Parameter(description="created_at >= since")] = None,
        until: Annotated[datetime | None, Parameter(description="created_at < until")] = None,
        cursor: Annotated[str | None, Parameter(max_length=1024)] = None,
        limit: Annotated[int, page_limit(500)] = 50,
    ) -> DecisionPage:
        """One page of decisions and the cursor of the next."""
        return await asyncio.to_thread(
            resources_of(request.app).recommendations.list,
            app=app,
            task=task,
            strategy=strategy,
            status=status,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )

    @get(
        "/recommendations/{decision_id:str}",
        summary="One decision with its evidence and deployment",
        opt={"permission": "recommendations.read"},
    )
    async def get_recommendation(
        self, request: Request[Any, Any, Any], decision_id: _ID
    ) -> RecommendationDetail:
        """The decision, its evidence, and its deployment with verdicts."""
        return await asyncio.to_thread(resources_of(request.app).recommendations.get, decision_id)

    @post(
        "/analyze",
        status_code=200,
        summary="Run the analyzers (and strategies) over stored windows now",
        opt={"permission": "recommendations.analyze"},
    )
    async def analyze(
        self, request: Request[Any, Any, Any], data: JSONBody[AnalyzeRequest]
    ) -> Analysis:
        """Insights (and proposals) for the app/task over the range; nothing is stored."""
        return await asyncio.to_thread(
            resources_of(request.app).recommendations.analyze,
            data.app,
            data.task,
            since=data.since,
            until=data.until,
        )

    @post(
        "/recommendations/{decision_id:str}/approve",
        status_code=200,
        summary="Approve a proposed decision: start its canary",
        opt={"permission": "recommendations.act"},
    )
    async def approve(self, request: Request[Any, Any, Any], decision_id: _ID) -> Decision:
        """The decision after approval."""
        actor = principal_of(request).subject
        resources = resources_of(request.app)
        decision = await asyncio.to_thread(
            resources.recommendations.approve, decision_id, actor=actor
        )
        await resources.configs.refresh(decision.app)  # the canary is a new config version
        return decision

    @post(
        "/recommendations/{decision_id:str}/reject",
        status_code=200,
        summary="Reject a proposed decision",
        opt={"permission": "recommendations.act"},
    )
    async def reject(
        self, request: Request[Any, Any, Any], decision_id: _ID, data: JSONBody[ActionRequest]
    ) -> Decision:
        """The decision after rejection."""
        actor = principal_of(request).subject
        return await asyncio.to_thread(
            resources_of(request.app).recommendations.reject,
            decision_id,
            actor=actor,
            reason=data.reason,
        )

    @post(
        "/recommendations/{decision_id:str}/rollback",
        status_code=200,
        summary="Roll back the deployment of a decision",
        opt={"permission": "recommendations.act"},
    )
    async def rollback(
        self, request: Request[Any, Any, Any], decision_id: _ID, data: JSONBody[ActionRequest]
    ) -> Deployment:
        """The deployment after the rollback."""
        actor = principal_of(request).subject
        resources = resources_of(request.app)
        deployment = await asyncio.to_thread(
            resources.recommendations.rollback, decision_id, actor=actor, reason=data.reason
        )
        await resources.configs.refresh(deployment.app)
        return deployment
