"""``/api/v1/integrations``: Slack/Jira/GitHub/Anthropic connections (secrets write-only)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.params import JSONBody, Parameter

from api.rest.auth import principal_of
from api.rest.resources import resources_of
from api.service import Integration, IntegrationInput, IntegrationPatch, TestResult

__all__ = ["IntegrationsController"]

_ID = Annotated[str, Parameter(min_length=1, max_length=64)]


class IntegrationsController(Controller):
    """Connections to the outside services the optimizer notifies."""

    path = "/api/v1/integrations"
    tags = ["integrations"]

    @get("/", summary="Every connection (never a secret)", opt={"permission": "integrations.read"})
    async def list_integrations(self, request: Request[Any, Any, Any]) -> list[Integration]:
        """Connections by name."""
        return await asyncio.to_thread(resources_of(request.app).integrations.list)

    @post("/", summary="Add a connection", opt={"permission": "integrations.write"})
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[IntegrationInput]
    ) -> Integration:
        """The stored connection (201); its secret is write-only."""
        return await resources_of(request.app).integrations.create(
            data, actor=principal_of(request).subject
        )

    @get("/{integration_id:str}", summary="One connection", opt={"permission": "integrations.read"})
    async def get_integration(
        self, request: Request[Any, Any, Any], integration_id: _ID
    ) -> Integration:
        """The connection without its secret."""
        return await asyncio.to_thread(resources_of(request.app).integrations.get, integration_id)

    @patch(
        "/{integration_id:str}",
        summary="Change secret, config or enabled",
        opt={"permission": "integrations.write"},
    )
    async def update(
        self, request: Request[Any, Any, Any], integration_id: _ID, data: JSONBody[IntegrationPatch]
    ) -> Integration:
        """The changed connection."""
        return await resources_of(request.app).integrations.update(
            integration_id, data, actor=principal_of(request).subject
        )

    @delete(
        "/{integration_id:str}",
        summary="Remove a connection",
        opt={"permission": "integrations.write"},
    )
    async def remove(self, request: Request[Any, Any, Any], integration_id: _ID) -> None:
        """204 when removed."""
        await asyncio.to_thread(
            resources_of(request.app).integrations.delete,
            integration_id,
            actor=principal_of(request).subject,
        )

    @post(
        "/{integration_id:str}/test",
        status_code=200,
        summary="Send a test notification through the connection",
        opt={"permission": "integrations.write"},
    )
    async def test(self, request: Request[Any, Any, Any], integration_id: _ID) -> TestResult:
        """Whether the outside service accepted it."""
        return await resources_of(request.app).integrations.test(integration_id)
