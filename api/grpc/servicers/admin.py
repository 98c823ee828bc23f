# ruff: noqa: N802 - gRPC method names are the proto's (PascalCase)
"""``llmopt.v1.AdminService`` over :class:`api.service.AdminService`."""

from __future__ import annotations

import asyncio
from typing import Any

from api.grpc.convert import optional, required, to_message
from api.grpc.errors import FieldError
from api.grpc.interceptors import principal_of
from api.grpc.live_layer import OnLiveLayer
from proto.llmopt.v1 import admin_pb2, admin_pb2_grpc
from storage.api_keys import ROLES

__all__ = ["AdminServicer"]

_pb = admin_pb2


class AdminServicer(OnLiveLayer, admin_pb2_grpc.AdminServiceServicer):
    """API keys, audit log, stats and reload (admin role only)."""

    async def CreateApiKey(
        self, request: _pb.CreateApiKeyRequest, context: Any
    ) -> _pb.CreateApiKeyResponse:
        """A new key, shown once."""
        if request.role not in ROLES:
            raise FieldError("role", f"must be one of {', '.join(ROLES)}")
        created = await asyncio.to_thread(
            self._r.admin.create_key,
            required(request.name, "name"),
            request.role,
            actor=principal_of().subject,
        )
        return to_message(created, _pb.CreateApiKeyResponse)

    async def ListApiKeys(
        self, request: _pb.ListApiKeysRequest, context: Any
    ) -> _pb.ListApiKeysResponse:
        """Key records (never the keys)."""
        found = await asyncio.to_thread(
            self._r.admin.list_keys, include_revoked=request.include_revoked
        )
        return to_message({"keys": found}, _pb.ListApiKeysResponse)

    async def RevokeApiKey(self, request: _pb.RevokeApiKeyRequest, context: Any) -> _pb.ApiKey:
        """Revoke a key."""
        if request.id < 1:
            raise FieldError("id", "must be at least 1")
        info = await asyncio.to_thread(
            self._r.admin.revoke_key, request.id, actor=principal_of().subject
        )
        return to_message(info, _pb.ApiKey)

    async def ListAuditLog(
        self, request: _pb.ListAuditLogRequest, context: Any
    ) -> _pb.ListAuditLogResponse:
        """Audit lines, newest first."""
        found = await asyncio.to_thread(
            self._r.admin.audit,
            resource=optional(request, "resource"),
            resource_id=optional(request, "resource_id"),
            before_id=optional(request, "before_id"),
            limit=optional(request, "limit", 100),
        )
        return to_message({"entries": found}, _pb.ListAuditLogResponse)

    async def Stats(self, request: _pb.StatsRequest, context: Any) -> _pb.StatsResponse:
        """Counts of stored records."""
        return to_message(await asyncio.to_thread(self._r.admin.stats), _pb.StatsResponse)

    async def Reload(self, request: _pb.ReloadRequest, context: Any) -> _pb.ReloadResponse:
        """Reload settings as SIGHUP does."""
        await self._r.admin.reload(actor=principal_of().subject)
        return _pb.ReloadResponse(status="reloading")
