"""``/api/v1/config``: the active config of an app (hot path), changes, versions, diff, rollback."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.params import JSONBody, Parameter

from api.rest.auth import principal_of
from api.rest.encoding import SKIP_COMPRESSION, encoded_response
from api.rest.etag import etag_of, not_modified
from api.rest.params import BeforeId, BodyVersion, FromVersion, ToVersion, Version, page_limit
from api.rest.resources import resources_of
from api.service import ConfigDiff
from core.app_config import AppConfig, ConfigVersion, TaskConfig

__all__ = ["ConfigController"]

_APP = Annotated[str, Parameter(min_length=1, max_length=512, description="application")]
Reason = Annotated[str, msgspec.Meta(max_length=2048)]


class ConfigUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A manual change: the whole task map of the new version, and why."""

    tasks: dict[str, TaskConfig]
    reason: Reason = ""


class ConfigRollback(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The version to make active again (stored as a new version), and why."""

    version: BodyVersion
    reason: Reason = ""


class ConfigController(Controller):
    """What applications read and operators change."""

    path = "/api/v1/config"
    tags = ["config"]

    @get("/", summary="Apps that have a config", opt={"permission": "config.read"})
    async def apps(self, request: Request[Any, Any, Any]) -> list[str]:
        """Every app with a stored config."""
        return await asyncio.to_thread(resources_of(request.app).configs.apps)

    @get(
        "/{app:str}",
        summary="The active config of an app (served from the cache)",
        opt={"permission": "config.read", SKIP_COMPRESSION: True},
    )
    async def active(self, request: Request[Any, Any, Any], app: _APP) -> Response[AppConfig]:
        """``{app, version, tasks}`` as in CONTRACT.md §3 (cached bytes, compressed once).

        With the database away, the last known config with ``x-llmopt-config-stale: true`` and
        ``x-llmopt-config-age-s``; a 503 only when no config of the app was ever known.
        With an ``If-None-Match`` naming the config's ``ETag``: 304 and no body.
        """
        read = await resources_of(request.app).configs.read(app)
        etag = etag_of(read.raw)
        headers = {"etag": etag, **read.headers()}
        if not_modified(request.headers.get("if-none-match", ""), etag):
            return cast("Response[AppConfig]", Response(b"", status_code=304, headers=headers))
        accept = request.headers.get("accept-encoding", "")
        return encoded_response(read.raw, accept, "application/json", headers)

    @put(
        "/{app:str}",
        summary="A manual change: validated, versioned, audited, published",
        opt={"permission": "config.write"},
    )
    async def update(
        self, request: Request[Any, Any, Any], app: _APP, data: JSONBody[ConfigUpdate]
    ) -> ConfigVersion:
        """The new version."""
        return await resources_of(request.app).configs.update(
            app,
            msgspec.to_builtins(data.tasks),
            author=principal_of(request).subject,
            reason=data.reason or "manual change",
        )

    @get(
        "/{app:str}/versions",
        summary="Versions of an app's config, newest first",
        opt={"permission": "config.read"},
    )
    async def versions(
        self,
        request: Request[Any, Any, Any],
        app: _APP,
        before: BeforeId = None,
        limit: Annotated[int, page_limit(1000)] = 100,
    ) -> list[ConfigVersion]:
        """Each version with its author, reason and diff."""
        return await asyncio.to_thread(
            resources_of(request.app).configs.versions, app, before=before, limit=limit
        )

    @get(
        "/{app:str}/versions/{version:int}",
        summary="One version of an app's config",
        opt={"permission": "config.read"},
    )
    async def version(
        self,
        request: Request[Any, Any, Any],
        app: _APP,
        version: Version,
    ) -> ConfigVersion:
        """The version's tasks, author, reason and diff."""
        return await asyncio.to_thread(resources_of(request.app).configs.version, app, version)

    @get(
        "/{app:str}/diff",
        summary="What changed between two versions",
        opt={"permission": "config.read"},
    )
    async def diff(
        self,
        request: Request[Any, Any, Any],
        app: _APP,
        from_version: FromVersion,
        to_version: ToVersion,
    ) -> ConfigDiff:
        """``{"task.field": {"from": x, "to": y}}``."""
        return await asyncio.to_thread(
            resources_of(request.app).configs.diff, app, from_version, to_version
        )

    @post(
        "/{app:str}/rollback",
        status_code=200,
        summary="Make an earlier version active again (as a new version)",
        opt={"permission": "config.write"},
    )
    async def rollback(
        self, request: Request[Any, Any, Any], app: _APP, data: JSONBody[ConfigRollback]
    ) -> ConfigVersion:
        """The new version, equal in tasks to ``version``."""
        return await resources_of(request.app).configs.rollback_to(
            app,
            data.version,
            author=principal_of(request).subject,
            reason=data.reason or f"rollback to version {data.version}",
        )
