"""The REST service: the Litestar app on Hypercorn (HTTP/1.1 and HTTP/2), in this process.

Hypercorn's ``serve()`` runs one server in the caller's event loop: it has no worker count
in-process (its workers are the ``hypercorn`` command's processes, loaded from an import
path), so one REST service uses at most one core; scale out with more replicas behind a
balancer (rate limits and config caches are shared through Redis). Measured costs and the
granian alternative: bench/README.md, ``bench/rest_load.py``.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config
from litestar import Litestar

from api.rest.app import create_app
from api.service import ReloadHook
from core.settings import Settings
from orchestrator.service import HealthResult, HealthStatus, ServiceBase

__all__ = ["RestService"]


class RestService(ServiceBase):
    """Serves ``api.rest.create_app(settings)`` on ``api.host:api.port``."""

    name = "rest"
    depends_on = ("storage", "processor")

    def __init__(self, settings: Settings, *, on_reload: ReloadHook | None = None) -> None:
        self._settings = settings
        self._on_reload = on_reload  # what POST /api/v1/admin/reload calls (SIGHUP's handler)
        self._shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._app: Litestar | None = None
        self._base = f"http://{settings.api.host}:{settings.api.port}"
        if settings.api.host in ("0.0.0.0", "::"):  # noqa: S104
            self._base = f"http://127.0.0.1:{settings.api.port}"

    async def start(self) -> None:
        """Start serving and wait until ``/health/live`` answers."""
        config = Config()
        config.bind = [f"{self._settings.api.host}:{self._settings.api.port}"]
        config.accesslog = None
        config.graceful_timeout = 5.0
        self._shutdown = asyncio.Event()
        app = create_app(self._settings, on_reload=self._on_reload)
        self._app = app
        self._task = asyncio.create_task(
            serve(app, config, shutdown_trigger=self._shutdown.wait)  # type: ignore[arg-type]
        )
        async with httpx.AsyncClient(timeout=2.0) as client:
            for _ in range(200):
                if self._task.done():
                    self._task.result()  # raises the server's own error
                    raise RuntimeError("REST server stopped during start-up")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self._base + "/health/live")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"REST server did not answer on {self._base} within 10 s")

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, close resources."""
        self._shutdown.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def reload(self, settings: Settings) -> None:
        """Per-request settings (rate limits) apply at once; the rest at the next start."""
        self._settings = settings
        if self._app is not None:
            self._app.state.settings = settings

    async def health_check(self) -> HealthResult:
        """Ask the server itself: ``/health`` over HTTP (503 when a required dependency is down)."""
        if self._task is None or self._task.done():
            return HealthResult(HealthStatus.UNHEALTHY, "server not running")
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(self._base + "/health")
        except httpx.HTTPError as exc:
            return HealthResult(HealthStatus.UNHEALTHY, f"no answer: {exc}")
        body = response.json()
        checks = {k: v["status"] for k, v in body.get("dependencies", {}).items()}
        if response.status_code != 200:
            return HealthResult(HealthStatus.UNHEALTHY, body.get("status", ""), checks)
        if body.get("status") == "degraded":
            return HealthResult(HealthStatus.DEGRADED, "a dependency is down", checks)
        return HealthResult(HealthStatus.HEALTHY, "", checks)
