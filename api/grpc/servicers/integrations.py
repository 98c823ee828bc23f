# ruff: noqa: N802 - gRPC method names are the proto's (PascalCase)
"""``llmopt.v1.IntegrationService`` over :class:`api.service.IntegrationService`."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from api.grpc.convert import optional, required, struct_dict, to_message
from api.grpc.errors import FieldError
from api.grpc.interceptors import principal_of
from api.grpc.live_layer import OnLiveLayer
from api.service import IntegrationInput
from proto.llmopt.v1 import integrations_pb2, integrations_pb2_grpc

__all__ = ["IntegrationServicer"]

_pb = integrations_pb2


class IntegrationServicer(OnLiveLayer, integrations_pb2_grpc.IntegrationServiceServicer):
    """Connections to outside services; secrets are write-only."""

    async def List(
        self, request: _pb.ListIntegrationsRequest, context: Any
    ) -> _pb.ListIntegrationsResponse:
        """Every connection, never a secret."""
        found = await asyncio.to_thread(self._r.integrations.list)
        return to_message({"integrations": found}, _pb.ListIntegrationsResponse)

    async def Create(self, request: _pb.CreateIntegrationRequest, context: Any) -> _pb.Integration:
        """A new connection."""
        enabled = optional(request, "enabled")
        raw = {
            "name": required(request.name, "name"),
            "kind": required(request.kind, "kind"),
            "secret": request.secret,
            "config": struct_dict(request.config),
            "enabled": True if enabled is None else enabled,
        }
        try:
            data = msgspec.convert(raw, IntegrationInput)
        except msgspec.ValidationError as exc:
            path = str(exc).rsplit("`$.", 1)
            field = path[1].rstrip("`") if len(path) == 2 else ""
            raise FieldError(field, str(exc)) from exc
        created = await self._r.integrations.create(data, actor=principal_of().subject)
        return to_message(created, _pb.Integration)

    async def Delete(
        self, request: _pb.DeleteIntegrationRequest, context: Any
    ) -> _pb.DeleteIntegrationResponse:
        """Remove a connection."""
        await asyncio.to_thread(
            self._r.integrations.delete, required(request.id, "id"), actor=principal_of().subject
        )
        return _pb.DeleteIntegrationResponse()

    async def Test(
        self, request: _pb.TestIntegrationRequest, context: Any
    ) -> _pb.TestIntegrationResponse:
        """Send a test notification."""
        result = await self._r.integrations.test(required(request.id, "id"))
        return _pb.TestIntegrationResponse(ok=result.ok, detail=result.detail)
