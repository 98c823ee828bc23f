"""What the gRPC server opens: the service layer REST uses too, with its own spill folder."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from api.service.layer import ServiceLayer, open_service_layer
from core.settings import Settings

__all__ = ["open_resources"]


def open_resources(settings: Settings, **kwargs: Any) -> AbstractAsyncContextManager[ServiceLayer]:
    """:func:`api.service.layer.open_service_layer` for the gRPC server (spill: ``grpc-spill``).

    Keyword arguments (``ingest``, ``own_ingest``, ``on_reload``, ``config_manager``) are those
    of :func:`~api.service.layer.open_service_layer`.
    """
    return open_service_layer(settings, spill_name="grpc-spill", **kwargs)
