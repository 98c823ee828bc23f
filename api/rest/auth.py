"""Authentication, then rate limiting, then the permission guard.

Only ``/health*``, ``/metrics``, ``/schema*`` and the console's log-in form and static files
(``/console/login``, ``/console/static/``) are open. On ``/console`` paths the console's signed
session cookie also authenticates (:mod:`api.rest.console.access`). Every other route names one
permission of :data:`api.service.permissions.PERMISSIONS` in ``opt={"permission": ...}``;
:func:`permission_guard` (installed on the app) allows the call when one of the caller's roles
holds it and refuses routes that name none. Rate limits apply after authentication, per caller
(API key or JWT subject); open routes and failed authentications count per client IP.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from api.rest.console.access import (
    CONSOLE_PUBLIC,
    cookie_of,
    is_console,
    remember_session,
    send_login_redirect,
    sessions_of,
    still_valid,
    wants_html,
)
from api.rest.context import set_rate_headers
from api.rest.resources import resources_of
from api.service.auth import Principal
from api.service.permissions import allowed
from api.service.rate_limit import RateDecision
from core.errors import AuthenticationError, OverloadedError, PermissionDeniedError

__all__ = [
    "OPEN_PATHS",
    "SecurityMiddleware",
    "apply_rate_limit",
    "is_open",
    "permission_guard",
    "principal_of",
]

OPEN_PATHS = ("^/health", "^/metrics", "^/schema", *(f"^{p}" for p in CONSOLE_PUBLIC))
_OPEN_PREFIXES = tuple(pattern.removeprefix("^") for pattern in OPEN_PATHS)


def is_open(path: str) -> bool:
    """Whether ``path`` needs no credentials (a prefix test: no regex per request)."""
    return path.startswith(_OPEN_PREFIXES)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _rate_headers(decision: RateDecision) -> dict[str, str]:
    headers = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset_s)),
    }
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after_s)))
    return headers


async def apply_rate_limit(app: Litestar, scope: Scope, identity: str, anonymous: bool) -> None:
    """Count one request of ``identity`` and set its ``RateLimit-*`` headers.

    Raises:
        OverloadedError: Over the limit (429 with ``Retry-After``).
    """
    api = app.state.settings.api
    rate = api.rate_limit.anonymous_per_s if anonymous else api.rate_limit.per_s
    burst = api.rate_limit.anonymous_burst if anonymous else api.rate_limit.burst
    if rate <= 0:
        return
    decision = await resources_of(app).limiter.hit(identity, rate, burst)
    set_rate_headers(scope, _rate_headers(decision))
    if not decision.allowed:
        raise OverloadedError(
            f"rate limit of {rate:g}/s (burst {burst}) exceeded",
            retry_after=decision.retry_after_s,
            cause="rate_limited",
        )


class SecurityMiddleware(ASGIMiddleware):
    """Authenticates the caller (``x-api-key`` or Bearer JWT) and applies its rate limit."""

    scopes = ("http",)  # type: ignore[assignment]

    async def _principal(self, app: Litestar, scope: Scope) -> Principal:
        auth = resources_of(app).auth
        key = _header(scope, b"x-api-key")
        if key:
            cached = auth.cached_key(key)
            return (
                cached
                if cached is not None
                else await asyncio.to_thread(auth.authenticate_key, key)
            )
        bearer = _header(scope, b"authorization")
        if bearer and bearer[:7].lower() == "bearer ":
            return auth.authenticate_token(bearer[7:].strip())
        cookie = cookie_of(scope) if is_console(scope["path"]) else None
        if cookie:
            store = sessions_of(app)
            session = await store.find(cookie)
            if session is None:
                raise AuthenticationError("console session expired or unknown: log in again")
            if not await still_valid(app, session):
                await store.end(cookie)
                raise AuthenticationError("the API key of this console session was revoked")
            remember_session(scope, session)
            return session.principal()
        raise AuthenticationError("missing credentials: send x-api-key or a Bearer token")

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Authenticate, rate-limit, then call the route."""
        app = Litestar.from_scope(scope)
        client = scope.get("client")
        ip = f"ip:{client[0] if client else 'unknown'}"
        if is_open(scope["path"]):
            await apply_rate_limit(app, scope, ip, anonymous=True)
            await next_app(scope, receive, send)
            return
        try:
            principal = await self._principal(app, scope)
        except AuthenticationError:
            await apply_rate_limit(app, scope, ip, anonymous=True)  # brute force counts per IP
            if is_console(scope["path"]) and scope.get("method") == "GET" and wants_html(scope):
                await send_login_redirect(scope, send)  # a browser: to the log-in form
                return
            raise
        await apply_rate_limit(app, scope, principal.subject, anonymous=False)
        scope["user"] = principal
        scope["auth"] = principal.subject
        await next_app(scope, receive, send)


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The authenticated caller of a guarded route."""
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise AuthenticationError("missing credentials: send x-api-key or a Bearer token")
    return user


async def permission_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Allow the call when a role of the caller holds the route's ``opt["permission"]``.

    A coroutine function on purpose: Litestar runs a plain function guard in a worker thread,
    a thread hop per request that cost more than the rest of a config read together.
    """
    if is_open(connection.scope["path"]) or connection.scope.get("method") == "OPTIONS":
        return  # open routes; OPTIONS answers only which methods exist
    permission = handler.opt.get("permission")
    principal = principal_of(connection)
    if not allowed(principal.roles, permission):
        raise PermissionDeniedError(
            f"roles {', '.join(principal.roles)} lack the permission {permission!r}"
        )
