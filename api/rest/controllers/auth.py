"""``/api/v1/auth/token``: exchange an API key for a short-lived JWT."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post

from api.rest.auth import principal_of
from api.rest.resources import resources_of
from api.service import IssuedToken

__all__ = ["AuthController"]


class AuthController(Controller):
    """Tokens for ``Authorization: Bearer``."""

    path = "/api/v1/auth"
    tags = ["auth"]

    @post(
        "/token",
        status_code=200,
        summary="A JWT with the API key's subject and role, valid for api.jwt_ttl",
        opt={"permission": "auth.token"},
    )
    async def token(self, request: Request[Any, Any, Any]) -> IssuedToken:
        """Sign a token for the calling API key (a token cannot mint another)."""
        return resources_of(request.app).auth.issue_token(principal_of(request))
