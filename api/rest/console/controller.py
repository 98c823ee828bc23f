"""``/console``: the operator console's pages and form actions (thin: load, view, render).

Pages need ``metrics.read`` or ``recommendations.read`` (viewers and up); the approve, reject and
roll-back forms need ``recommendations.act`` (operators and admins) and, when the caller is
authenticated by the session cookie, the session's CSRF token. Actions go through the same
service methods as ``/api/v1/optimize`` (which write the audit line), then back to the page.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template

from api.rest.auth import principal_of
from api.rest.console.access import session_of, sessions_of
from api.rest.console.fleet import SORT_KEYS, FleetFilter, select_rows
from api.rest.console.insight_view import InsightQuery
from api.rest.console.loaders import (
    load_fleet,
    load_insights,
    load_rollout,
    load_rollouts,
    load_task,
)
from api.rest.console.session import COOKIE_NAME, cookie_header, csrf_matches
from api.rest.resources import resources_of
from api.service.permissions import allowed
from core.errors import AuthenticationError, OptimizerError, PermissionDeniedError

__all__ = ["ConsoleController", "LoginController"]

_NAME = Annotated[str, Parameter(min_length=1, max_length=512)]
_ID = Annotated[str, Parameter(min_length=1, max_length=64)]
_SPAN = Annotated[int, Parameter(ge=1, le=24 * 14, description="hours to show")]
_SORT = Literal["app", "calls", "cost_per_call", "p95", "error_rate", "quality", "insights"]
DecisionStatusName = Literal["proposed", "canary", "promoted", "rolled_back", "rejected", "applied"]


def _page(request: Request[Any, Any, Any], name: str, **context: Any) -> Template:
    principal = principal_of(request)
    session = session_of(request)
    return Template(
        template_name=name,
        context={
            "principal": principal,
            "csrf": session.csrf if session is not None else "",
            "can_act": allowed(principal.roles, "recommendations.act"),
            "path": request.url.path,
            **context,
        },
    )


async def _require_csrf(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The posted form; when the caller came by session cookie, its token must match."""
    form = await request.form()
    fields = {k: str(v) for k, v in form.items()}
    session = session_of(request)
    if session is not None and not csrf_matches(session, fields.get("csrf_token")):
        raise PermissionDeniedError("the form's CSRF token is missing or wrong: reload the page")
    return fields


def _safe_next(target: str | None) -> str:
    """Only a console path of this server (no scheme, no ``//host``)."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console"


class LoginController(Controller):
    """The log-in form (open): an API key in, a session cookie out."""

    path = "/console/login"
    include_in_schema = False

    @get("/", opt={"permission": None})
    async def form(
        self,
        next: Annotated[str | None, Parameter(max_length=2048)] = None,
        error: Annotated[str, Parameter(max_length=200)] = "",
    ) -> Template:
        """The log-in form."""
        return Template(
            template_name="login.html", context={"next": _safe_next(next), "error": error}
        )

    @post("/", opt={"permission": None}, status_code=303)
    async def login(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Verify the key; on success a session and a redirect to where the browser was going."""
        form = await request.form()
        key = str(form.get("api_key", ""))[:512]
        target = _safe_next(str(form.get("next", "")))
        resources = resources_of(request.app)
        try:
            principal = await asyncio.to_thread(resources.auth.authenticate_key, key)
        except AuthenticationError:
            return Redirect(
                f"/console/login?next={quote(target, safe='')}&error=unknown+or+revoked+key",
                status_code=303,
            )
        store = sessions_of(request.app)
        cookie, _ = await store.create(principal)
        return Redirect(
            target, status_code=303, headers={"set-cookie": cookie_header(cookie, store.ttl_s)}
        )


class ConsoleController(Controller):
    """The console's pages and actions."""

    path = "/console"
    include_in_schema = False

    @post("/logout", opt={"permission": "metrics.read"}, status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """End the session and drop its cookie."""
        await _require_csrf(request)
        session_cookie = request.cookies.get(COOKIE_NAME)
        if session_cookie:
            await sessions_of(request.app).end(session_cookie)
        return Redirect(
            "/console/login", status_code=303, headers={"set-cookie": cookie_header("", 0)}
        )

    @get("/", opt={"permission": "metrics.read"})
    async def fleet(
        self,
        request: Request[Any, Any, Any],
        q: Annotated[str, Parameter(max_length=200)] = "",
        sort: Annotated[_SORT | None, Parameter(description="column to sort by")] = None,
        order: Annotated[Literal["asc", "desc"], Parameter(description="sort order")] = "asc",
        rollout: Annotated[bool, Parameter(description="open rollouts only")] = False,
        insights: Annotated[bool, Parameter(description="tasks with insights only")] = False,
        model: Annotated[str | None, Parameter(max_length=200, description="model")] = None,
        hours: _SPAN = 24,
    ) -> Template:
        """Apps and tasks with the last day's numbers, filtered and sorted by the query."""
        now = datetime.now(UTC)
        rows = await asyncio.to_thread(
            load_fleet, resources_of(request.app), now, timedelta(hours=hours)
        )
        wanted = FleetFilter(
            q=q,
            rollout_only=rollout,
            with_insights=insights,
            sort=sort or "app",
            descending=order == "desc",
            models=(model,) if model else (),
        )
        return _page(
            request,
            "fleet.html",
            rows=select_rows(rows, wanted),
            total=len(rows),
            wanted=wanted,
            sort_keys=SORT_KEYS,
            models=sorted({r.model for r in rows if r.model}),
            hours=hours,
        )

    @get("/apps/{app:str}/tasks/{task:str}", opt={"permission": "metrics.read"})
    async def task(
        self, request: Request[Any, Any, Any], app: _NAME, task: _NAME, hours: _SPAN = 24
    ) -> Template:
        """A task's series with its events, active config and config history."""
        page = await asyncio.to_thread(
            load_task,
            resources_of(request.app),
            app,
            task,
            datetime.now(UTC),
            timedelta(hours=hours),
        )
        return _page(request, "task.html", page=page, hours=hours)

    @get("/rollouts", opt={"permission": "recommendations.read"})
    async def rollouts(
        self,
        request: Request[Any, Any, Any],
        status: Annotated[DecisionStatusName | None, Parameter(description="status")] = None,
    ) -> Template:
        """Decisions and their rollouts, newest first."""
        decisions = await asyncio.to_thread(
            load_rollouts, resources_of(request.app), [status] if status else None
        )
        return _page(request, "rollouts.html", decisions=decisions, status=status or "")

    @get("/rollouts/{decision_id:str}", opt={"permission": "recommendations.read"})
    async def rollout(
        self,
        request: Request[Any, Any, Any],
        decision_id: _ID,
        done: Annotated[str, Parameter(max_length=64)] = "",
        error: Annotated[str, Parameter(max_length=1024)] = "",
    ) -> Template:
        """A decision, each stage's checks in words and charts, the actions allowed."""
        can_act = allowed(principal_of(request).roles, "recommendations.act")
        view = await asyncio.to_thread(
            load_rollout, resources_of(request.app), decision_id, can_act=can_act
        )
        return _page(request, "rollout.html", view=view, done=done, error=error)

    @get("/insights", opt={"permission": "metrics.read"})
    async def insights(
        self,
        request: Request[Any, Any, Any],
        app: Annotated[str | None, Parameter(max_length=512)] = None,
        severity: Annotated[
            Literal["info", "warning", "critical"] | None, Parameter(description="severity")
        ] = None,
        kind: Annotated[str | None, Parameter(max_length=128)] = None,
        hours: _SPAN = 24,
    ) -> Template:
        """Anomaly and drift insights with the series around each."""
        query = InsightQuery(app=app or None, severity=severity, kind=kind or None)
        items = await asyncio.to_thread(
            load_insights,
            resources_of(request.app),
            query,
            datetime.now(UTC),
            timedelta(hours=hours),
        )
        return _page(request, "insights.html", items=items, query=query, hours=hours)

    async def _act(
        self, request: Request[Any, Any, Any], decision_id: str, action: str
    ) -> Redirect:
        fields = await _require_csrf(request)
        actor = principal_of(request).subject
        reason = fields.get("reason", "")[:2048] or f"{action} in the console"
        resources = resources_of(request.app)
        page = f"/console/rollouts/{quote(decision_id, safe='')}"
        try:
            if action == "approve":
                decision = await asyncio.to_thread(
                    resources.recommendations.approve, decision_id, actor=actor
                )
                await resources.configs.refresh(decision.app)  # the canary is a new version
            elif action == "reject":
                await asyncio.to_thread(
                    resources.recommendations.reject, decision_id, actor=actor, reason=reason
                )
            else:
                deployment = await asyncio.to_thread(
                    resources.recommendations.rollback, decision_id, actor=actor, reason=reason
                )
                await resources.configs.refresh(deployment.app)
        except PermissionDeniedError:
            raise
        except OptimizerError as exc:
            return Redirect(f"{page}?error={quote(str(exc), safe='')}", status_code=303)
        return Redirect(f"{page}?done={action}", status_code=303)

    @post(
        "/rollouts/{decision_id:str}/approve",
        opt={"permission": "recommendations.act"},
        status_code=303,
    )
    async def approve(self, request: Request[Any, Any, Any], decision_id: _ID) -> Redirect:
        """Approve a proposed decision (starts its canary), as ``POST .../approve`` does."""
        return await self._act(request, decision_id, "approve")

    @post(
        "/rollouts/{decision_id:str}/reject",
        opt={"permission": "recommendations.act"},
        status_code=303,
    )
    async def reject(self, request: Request[Any, Any, Any], decision_id: _ID) -> Redirect:
        """Reject a proposed decision."""
        return await self._act(request, decision_id, "reject")

    @post(
        "/rollouts/{decision_id:str}/rollback",
        opt={"permission": "recommendations.act"},
        status_code=303,
    )
    async def rollback(self, request: Request[Any, Any, Any], decision_id: _ID) -> Redirect:
        """Roll back the decision's deployment."""
        return await self._act(request, decision_id, "rollback")
