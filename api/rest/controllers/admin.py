"""``/api/v1/admin``: API keys, audit log, stats, reload."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_202_ACCEPTED

from api.rest.auth import principal_of
from api.rest.params import BeforeId, RowId, page_limit
from api.rest.resources import resources_of
from api.service import CreatedKey, Stats
from storage.api_keys import ApiKeyInfo, Role
from storage.audit import AuditEntry

__all__ = ["AdminController"]


class KeyRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new key's name and role."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    role: Role


class AdminController(Controller):
    """Administration; admin role only."""

    path = "/api/v1/admin"
    tags = ["admin"]

    @post("/keys", summary="Create an API key (returned once)", opt={"permission": "admin"})
    async def create_key(
        self, request: Request[Any, Any, Any], data: JSONBody[KeyRequest]
    ) -> CreatedKey:
        """The key (shown only now) and its record."""
        return await asyncio.to_thread(
            resources_of(request.app).admin.create_key,
            data.name,
            data.role,
            actor=principal_of(request).subject,
        )

    @get("/keys", summary="API keys (never the keys themselves)", opt={"permission": "admin"})
    async def list_keys(
        self,
        request: Request[Any, Any, Any],
        include_revoked: Annotated[bool, Parameter(description="also revoked keys")] = False,
    ) -> list[ApiKeyInfo]:
        """Key records, oldest first."""
        return await asyncio.to_thread(
            resources_of(request.app).admin.list_keys, include_revoked=include_revoked
        )

    @delete(
        "/keys/{key_id:int}",
        status_code=200,
        summary="Revoke an API key",
        opt={"permission": "admin"},
    )
    async def revoke_key(self, request: Request[Any, Any, Any], key_id: RowId) -> ApiKeyInfo:
        """The revoked key's record."""
        return await asyncio.to_thread(
            resources_of(request.app).admin.revoke_key,
            key_id,
            actor=principal_of(request).subject,
        )

    @get("/audit", summary="The audit log, newest first", opt={"permission": "admin"})
    async def audit(
        self,
        request: Request[Any, Any, Any],
        resource: Annotated[str | None, Parameter(max_length=64)] = None,
        resource_id: Annotated[str | None, Parameter(max_length=512)] = None,
        before_id: BeforeId = None,
        limit: Annotated[int, page_limit(1000)] = 100,
    ) -> list[AuditEntry]:
        """Who changed what, when."""
        return await asyncio.to_thread(
            resources_of(request.app).admin.audit,
            resource=resource,
            resource_id=resource_id,
            before_id=before_id,
            limit=limit,
        )

    @get("/stats", summary="Counts of stored records", opt={"permission": "admin"})
    async def stats(self, request: Request[Any, Any, Any]) -> Stats:
        """Windows, insights, configs, decisions, deployments, outbox, keys."""
        return await asyncio.to_thread(resources_of(request.app).admin.stats)

    @post(
        "/reload",
        status_code=HTTP_202_ACCEPTED,
        summary="Reload settings (as SIGHUP); 503 when this server has no reload hook",
        opt={"permission": "admin"},
    )
    async def reload(self, request: Request[Any, Any, Any]) -> dict[str, str]:
        """Accepted: the orchestrator reloads and validates its settings."""
        await resources_of(request.app).admin.reload(actor=principal_of(request).subject)
        return {"status": "reloading"}
