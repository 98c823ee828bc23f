"""What the REST app opens in its lifespan and hands to controllers: the shared service layer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar

from api.service.layer import ServiceLayer, open_service_layer
from core.settings import Settings

__all__ = ["lifespan", "resources_of"]


def resources_of(app: Litestar) -> ServiceLayer:
    """The service layer the lifespan put on ``app.state``."""
    found = app.state.resources
    assert isinstance(found, ServiceLayer)
    return found


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Open the service layer (spill: ``rest-spill``) for the app's lifetime."""
    settings: Settings = app.state.settings
    hooks: dict[str, Any] = app.state.hooks
    async with open_service_layer(
        settings,
        spill_name="rest-spill",
        ingest=hooks.get("ingest"),
        on_reload=hooks.get("on_reload"),
        config_manager=hooks.get("config_manager"),
    ) as layer:
        app.state.resources = layer
        yield
