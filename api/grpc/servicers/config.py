# ruff: noqa: N802 - gRPC method names are the proto's (PascalCase)
"""``llmopt.v1.ConfigService`` over :class:`api.service.ConfigService`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import json_format

from api.grpc.convert import optional, required, to_builtins, to_message
from api.grpc.errors import FieldError
from api.grpc.initial_metadata import add_initial_metadata
from api.grpc.interceptors import principal_of
from api.grpc.live_layer import LiveLayer, OnLiveLayer
from api.grpc.watch import follow_config
from proto.llmopt.v1 import config_pb2, config_pb2_grpc

__all__ = ["ConfigMessages", "ConfigServicer", "config_message"]


def config_message(raw: bytes) -> config_pb2.AppConfig:
    """The JSON of an active config (CONTRACT.md §3) as a message."""
    message = config_pb2.AppConfig()
    json_format.Parse(raw, message, ignore_unknown_fields=True)
    return message


class ConfigMessages:
    """The message of each app's active config, parsed once per config JSON.

    ``json_format.Parse`` cost ~35 µs of a ``GetConfig`` call; the JSON the service layer returns
    changes with every new version (it carries ``version``), so a message kept with the JSON it
    was parsed from is current exactly while that JSON is what the service returns. Callers
    must not modify the returned message (it is shared); copy it first.

    Args:
        max_apps: Entries kept before the table is cleared (as the service's own slots).
    """

    def __init__(self, max_apps: int = 10_000) -> None:
        self._by_app: dict[str, tuple[bytes, config_pb2.AppConfig]] = {}
        self._max = max_apps

    def get(self, app: str, raw: bytes) -> config_pb2.AppConfig:
        """The message of ``raw`` (``app``'s active config JSON)."""
        found = self._by_app.get(app)
        if found is not None and (found[0] is raw or found[0] == raw):
            return found[1]
        message = config_message(raw)
        if len(self._by_app) >= self._max:
            self._by_app.clear()
        self._by_app[app] = (raw, message)
        return message


class ConfigServicer(OnLiveLayer, config_pb2_grpc.ConfigServiceServicer):
    """Reads, changes and follows app configs."""

    def __init__(self, resources: LiveLayer) -> None:
        super().__init__(resources)
        self._messages = ConfigMessages()

    async def GetConfig(
        self, request: config_pb2.GetConfigRequest, context: Any
    ) -> config_pb2.AppConfig:
        """The active config (the same cached JSON REST serves).

        With the database away, the last known config with the initial metadata
        ``x-llmopt-config-stale: true`` and ``x-llmopt-config-age-s``; ``UNAVAILABLE`` only when
        no config of the app was ever known.
        """
        read = await self._r.configs.read(required(request.app, "app"))
        if read.stale:
            await add_initial_metadata(context, read.headers().items())
        return self._messages.get(request.app, read.raw)

    async def UpdateConfig(
        self, request: config_pb2.UpdateConfigRequest, context: Any
    ) -> config_pb2.ConfigVersion:
        """A new version with the given tasks."""
        tasks = {name: to_builtins(task) for name, task in request.tasks.items()}
        version = await self._r.configs.update(
            required(request.app, "app"),
            tasks,
            author=principal_of().subject,
            reason=request.reason or "manual change",
        )
        return to_message(version, config_pb2.ConfigVersion)

    async def ListVersions(
        self, request: config_pb2.ListVersionsRequest, context: Any
    ) -> config_pb2.ListVersionsResponse:
        """Versions newest first."""
        found = await asyncio.to_thread(
            self._r.configs.versions,
            required(request.app, "app"),
            before=optional(request, "before"),
            limit=optional(request, "limit", 100),
        )
        return to_message({"versions": found}, config_pb2.ListVersionsResponse)

    async def RollbackConfig(
        self, request: config_pb2.RollbackConfigRequest, context: Any
    ) -> config_pb2.ConfigVersion:
        """The tasks of an earlier version, stored as the newest."""
        if request.version < 1:
            raise FieldError("version", "must be at least 1")
        version = await self._r.configs.rollback_to(
            required(request.app, "app"),
            request.version,
            author=principal_of().subject,
            reason=request.reason or f"rollback to version {request.version}",
        )
        return to_message(version, config_pb2.ConfigVersion)

    async def WatchConfig(
        self, request: config_pb2.WatchConfigRequest, context: Any
    ) -> AsyncIterator[config_pb2.AppConfig]:
        """The active config, then every newer one.

        When the first config is the last known one (the database is away), the initial
        metadata says so as for ``GetConfig``; newer ones follow once the database is back.
        """
        first = True
        async for config, read in follow_config(
            self._r.configs,
            self._r.cache,
            required(request.app, "app"),
            after_version=optional(request, "after_version", 0),
            poll_s=self._r.settings.grpc.watch_poll_interval.total_seconds(),
        ):
            if first and read is not None and read.stale:
                await add_initial_metadata(context, read.headers().items())
            first = False
            yield to_message(config, config_pb2.AppConfig)
