"""The REST service: the Litestar app on granian's worker processes (HTTP/1.1, h2c, h2 over TLS).

One child process runs :func:`api.rest.server.serve`: granian's main process on
``api.host:api.port`` with ``api.workers`` worker processes on that socket, so the REST surface
uses as many cores as it has workers. Stop is graceful: each worker lets its in-flight requests
complete (at most ``api.request_timeout``) before granian closes connections (GOAWAY for HTTP/2).
``POST /api/v1/admin/reload`` in a worker reaches this process's reload hook through a queue;
new settings go the other way and the workers are replaced one by one (the socket stays open).
Measured costs: bench/README.md, ``bench/rest_load.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from typing import Any

import httpx

from api.rest.server import ServerControl, serve
from api.service import ReloadHook
from core.settings import Settings
from orchestrator.observability import configure_logging, configure_tracing, log_format_for
from orchestrator.service import HealthResult, HealthStatus, ServiceBase
from orchestrator.services.reload_relay import relay_reloads

__all__ = ["RestService", "configure_worker"]

_STOP_MARGIN_S = 10.0  # beyond the workers' drain (request_timeout) and granian's kill timeout


def configure_worker(settings: Settings) -> None:
    """Logging and tracing in a REST worker process, as the orchestrator sets up its own."""
    configure_logging(
        settings.log_level, log_format_for(settings.orchestrator.log_format, settings.env)
    )
    configure_tracing(settings.orchestrator.otlp_endpoint)


class RestService(ServiceBase):
    """Serves ``api.rest.create_app(settings)`` on ``api.host:api.port`` with ``api.workers``."""

    name = "rest"
    depends_on = ("storage", "processor")

    def __init__(self, settings: Settings, *, on_reload: ReloadHook | None = None) -> None:
        self._settings = settings
        self._on_reload = on_reload  # what POST /api/v1/admin/reload calls (SIGHUP's handler)
        self._process: Any = None
        self._control: ServerControl | None = None
        self._relay: asyncio.Task[None] | None = None
        scheme = "https" if settings.api.tls_cert_path else "http"
        host = settings.api.host
        if host in ("0.0.0.0", "::"):  # noqa: S104
            host = "127.0.0.1"
        self._base = f"{scheme}://{host}:{settings.api.port}"

    @property
    def pid(self) -> int | None:
        """The server process (granian's main process), while it runs."""
        return None if self._process is None else int(self._process.pid)

    async def start(self) -> None:
        """Start the server process and wait until ``/health/live`` answers."""
        context = multiprocessing.get_context("spawn")
        self._control = ServerControl()
        if self._on_reload is None:
            self._control.reloads = None
        self._process = context.Process(
            target=serve,
            args=(self._settings, self._control, configure_worker),
            name="llmopt-rest",
            daemon=False,
        )
        self._process.start()
        if self._on_reload is not None:
            self._relay = asyncio.create_task(relay_reloads(self._control.reloads, self._on_reload))
        # Wait as long as it takes: the service manager bounds start() by
        # orchestrator.start_timeout and cancels it; a busy machine may need most of that.
        try:
            async with httpx.AsyncClient(timeout=2.0, verify=False) as client:  # noqa: S501
                while True:
                    if not self._process.is_alive():
                        code = self._process.exitcode
                        raise RuntimeError(f"REST server exited during start-up (code {code})")
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(self._base + "/health/live")).status_code == 200:
                            return
                    await asyncio.sleep(0.05)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """SIGTERM: the workers finish their in-flight requests, then close; wait for it."""
        process, self._process = self._process, None
        if process is not None:
            if process.is_alive():
                process.terminate()
            limit = self._settings.api.request_timeout.total_seconds() + _STOP_MARGIN_S
            await asyncio.to_thread(process.join, limit)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5)
        control, self._control = self._control, None
        if self._relay is not None and control is not None and control.reloads is not None:
            control.reloads.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
        self._relay = None

    async def reload(self, settings: Settings) -> None:
        """Replace the workers one by one with apps built from ``settings`` (socket kept)."""
        changed, self._settings = settings != self._settings, settings
        if changed and self._control is not None and self._process is not None:
            self._control.settings.put(settings)

    async def health_check(self) -> HealthResult:
        """Ask the server itself: ``/health`` over HTTP (503 when a required dependency is down)."""
        if self._process is None or not self._process.is_alive():
            return HealthResult(HealthStatus.UNHEALTHY, "server not running")
        try:
            async with httpx.AsyncClient(timeout=5.0, verify=False) as client:  # noqa: S501
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
