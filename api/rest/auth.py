"""Authentication (``x-api-key``) and role guards.

Only ``/health*``, ``/metrics`` and ``/schema*`` are open; every other route names the roles
that may call it in its ``opt={"roles": ...}`` and :func:`role_guard` enforces them.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware

from api.rest.resources import resources_of
from storage.api_keys import Role

__all__ = ["OPEN_PATHS", "Principal", "auth_middleware", "role_guard"]

OPEN_PATHS = ("^/health", "^/metrics", "^/schema")
API_KEY_HEADER = "x-api-key"


@dataclass(frozen=True)
class Principal:
    """Who is calling and with which role."""

    role: Role


class _ApiKeyAuthentication(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        key = connection.headers.get(API_KEY_HEADER)
        if not key:
            raise NotAuthorizedException(f"missing credentials: send the {API_KEY_HEADER} header")
        bootstrap = connection.app.state.settings.api.bootstrap_admin_key
        if bootstrap and hmac.compare_digest(key.encode(), bootstrap.encode()):
            # The bootstrap key is configuration: it works even while the database is down.
            return AuthenticationResult(user=Principal("admin"), auth=key)
        role = await asyncio.to_thread(resources_of(connection.app).api_keys.role_of, key)
        if role is None:
            raise NotAuthorizedException("unknown or revoked API key")
        return AuthenticationResult(user=Principal(role), auth=key)


auth_middleware = DefineMiddleware(_ApiKeyAuthentication, exclude=list(OPEN_PATHS))


def role_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Allow the call only when the caller's role is in the handler's ``opt["roles"]``."""
    allowed: tuple[Role, ...] = handler.opt.get("roles", ())
    user = connection.user
    if not isinstance(user, Principal) or user.role not in allowed:
        raise PermissionDeniedException(
            f"role {getattr(user, 'role', None)!r} may not call this; allowed: {', '.join(allowed)}"
        )
