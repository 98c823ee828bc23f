# ruff: noqa: N802 - gRPC method names are the proto's (PascalCase)
"""``llmopt.v1.OptimizationService`` over :class:`api.service.RecommendationService`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from api.grpc.convert import optional, required, time_of, to_message
from api.grpc.errors import FieldError, status_of
from api.grpc.interceptors import principal_of
from api.grpc.live_layer import OnLiveLayer
from api.grpc.servicers.config import config_message
from api.grpc.watch import DecisionChange, follow_decisions
from api.service import Analysis
from api.service.auth import Principal
from api.service.permissions import allowed
from core.decisions import Decision
from core.errors import OptimizerError, PermissionDeniedError
from proto.llmopt.v1 import optimization_pb2, optimization_pb2_grpc

__all__ = ["OptimizationServicer"]

_pb = optimization_pb2


def _event(change: DecisionChange) -> optimization_pb2.DecisionEvent:
    if change.decision is not None:
        return _pb.DecisionEvent(
            kind=change.kind,
            decision=to_message(change.decision, _pb.Decision),
            app=change.decision.app,
            task=change.decision.task,
        )
    assert change.verdict is not None
    assert change.deployment is not None
    return _pb.DecisionEvent(
        kind=change.kind,
        verdict=to_message(change.verdict, _pb.Verdict),
        app=change.deployment.app,
        task=change.deployment.task,
    )


def _require_permission(principal: Principal, permission: str) -> None:
    if not allowed(principal.roles, permission):
        raise PermissionDeniedError(
            f"roles {', '.join(principal.roles)} lack the permission {permission!r}"
        )


class OptimizationServicer(OnLiveLayer, optimization_pb2_grpc.OptimizationServiceServicer):
    """Recommendations: read, analyze, act on them, watch them, talk about them."""

    async def GetRecommendation(
        self, request: _pb.GetRecommendationRequest, context: Any
    ) -> _pb.Recommendation:
        """A decision with its deployment."""
        detail = await asyncio.to_thread(
            self._r.recommendations.get, required(request.decision_id, "decision_id")
        )
        return to_message(detail, _pb.Recommendation)

    async def ListRecommendations(
        self, request: _pb.ListRecommendationsRequest, context: Any
    ) -> _pb.ListRecommendationsResponse:
        """One page of decisions, newest first."""
        page = await asyncio.to_thread(
            self._r.recommendations.list,
            app=optional(request, "app"),
            task=optional(request, "task"),
            strategy=optional(request, "strategy"),
            status=list(request.status) or None,
            since=time_of(request, "since"),
            until=time_of(request, "until"),
            cursor=optional(request, "cursor"),
            limit=optional(request, "limit", 50),
        )
        return to_message(page, _pb.ListRecommendationsResponse)

    async def Analyze(self, request: _pb.AnalyzeRequest, context: Any) -> _pb.AnalyzeResponse:
        """Insights and proposals over stored windows."""
        analysis = await self._analyze(
            request.app,
            optional(request, "task"),
            time_of(request, "since"),
            time_of(request, "until"),
        )
        return to_message(analysis, _pb.AnalyzeResponse)

    async def _analyze(
        self, app: str, task: str | None, since: datetime | None, until: datetime | None
    ) -> Analysis:
        return await asyncio.to_thread(
            self._r.recommendations.analyze,
            required(app, "app"),
            task,
            since=since,
            until=until,
        )

    async def Approve(self, request: _pb.ApproveRequest, context: Any) -> _pb.Decision:
        """Start the decision's canary."""
        return to_message(await self._approve(request.decision_id), _pb.Decision)

    async def _approve(self, decision_id: str) -> Decision:
        decision = await asyncio.to_thread(
            self._r.recommendations.approve,
            required(decision_id, "decision_id"),
            actor=principal_of().subject,
        )
        await self._r.configs.refresh(decision.app)  # the canary is a new config version
        return decision

    async def _reject(self, decision_id: str, reason: str) -> Decision:
        return await asyncio.to_thread(
            self._r.recommendations.reject,
            required(decision_id, "decision_id"),
            actor=principal_of().subject,
            reason=reason,
        )

    async def Reject(self, request: _pb.RejectRequest, context: Any) -> _pb.Decision:
        """Reject a proposed decision."""
        return to_message(await self._reject(request.decision_id, request.reason), _pb.Decision)

    async def Rollback(self, request: _pb.RollbackRequest, context: Any) -> _pb.Deployment:
        """Roll back a decision's deployment."""
        deployment = await asyncio.to_thread(
            self._r.recommendations.rollback,
            required(request.decision_id, "decision_id"),
            actor=principal_of().subject,
            reason=request.reason,
        )
        await self._r.configs.refresh(deployment.app)
        return to_message(deployment, _pb.Deployment)

    def _follow(self, app: str | None, since: Any = None) -> AsyncIterator[DecisionChange]:
        return follow_decisions(
            self._r.recommendations,
            self._r.deployments,
            app,
            since=since,
            poll_s=self._r.settings.grpc.watch_poll_interval.total_seconds(),
        )

    async def WatchDecisions(
        self, request: _pb.WatchDecisionsRequest, context: Any
    ) -> AsyncIterator[_pb.DecisionEvent]:
        """New decisions, status changes and verdicts."""
        async for change in self._follow(optional(request, "app"), time_of(request, "since")):
            yield _event(change)

    async def _answer(
        self, request: _pb.SessionRequest, principal: Principal, following: set[str]
    ) -> _pb.SessionResponse:
        answer = _pb.SessionAnswer()
        which = request.WhichOneof("kind")
        if which == "follow":
            following.clear()
            following.update(a for a in request.follow.apps if a)
            answer.following.extend(sorted(following))
        elif which == "query":
            query = request.query
            app = required(query.app, "query.app")
            if query.what == "recommendations":
                page = await asyncio.to_thread(
                    self._r.recommendations.list,
                    app=app,
                    task=optional(query, "task"),
                    status=["proposed"],
                    limit=50,
                )
                answer.recommendations.extend(to_message(d, _pb.Decision) for d in page.items)
            elif query.what == "config":
                _require_permission(principal, "config.read")
                answer.config.CopyFrom(config_message(await self._r.configs.active_json(app)))
            elif query.what == "analysis":
                _require_permission(principal, "recommendations.analyze")
                analysis = await self._analyze(app, optional(query, "task"), None, None)
                answer.analysis.CopyFrom(to_message(analysis, _pb.AnalyzeResponse))
            else:
                raise FieldError("query.what", "must be recommendations, config or analysis")
        elif which == "feedback":
            _require_permission(principal, "recommendations.act")
            feedback = request.feedback
            if feedback.action == "approve":
                decision = await self._approve(feedback.decision_id)
            elif feedback.action == "reject":
                decision = await self._reject(feedback.decision_id, feedback.reason)
            else:
                raise FieldError("feedback.action", "must be approve or reject")
            answer.decision.CopyFrom(to_message(decision, _pb.Decision))
        else:
            raise FieldError("kind", "send follow, query or feedback")
        return _pb.SessionResponse(request_id=request.request_id, answer=answer)

    async def OptimizationSession(
        self, request_iterator: AsyncIterator[_pb.SessionRequest], context: Any
    ) -> AsyncIterator[_pb.SessionResponse]:
        """Answer each message in order; push new proposals of the followed apps."""
        principal = principal_of()
        following: set[str] = set()
        out: asyncio.Queue[_pb.SessionResponse | BaseException | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for request in request_iterator:
                    try:
                        reply = await self._answer(request, principal, following)
                    except OptimizerError as exc:
                        error = _pb.SessionError(code=status_of(exc).name, message=str(exc))
                        reply = _pb.SessionResponse(request_id=request.request_id, error=error)
                    await out.put(reply)
                await out.put(None)
            except Exception as exc:
                await out.put(exc)

        async def push() -> None:
            try:
                async for change in self._follow(None):
                    decision = change.decision
                    if (
                        change.kind == "decision.created"
                        and decision is not None
                        and decision.status == "proposed"
                        and decision.app in following
                    ):
                        suggestion = to_message(decision, _pb.Decision)
                        await out.put(_pb.SessionResponse(suggestion=suggestion))
            except Exception as exc:
                await out.put(exc)

        tasks = [asyncio.create_task(read()), asyncio.create_task(push())]
        try:
            while True:
                item = await out.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
