"""The standard ``grpc.health.v1.Health`` service, following the server's dependencies.

Every ``health_interval`` the same probes as REST's ``/health`` run (database required; Kafka and
the cache as configured): a required dependency down makes the whole server and each
``llmopt.v1`` service ``NOT_SERVING``; otherwise ``SERVING``. On shutdown everything goes
``NOT_SERVING`` first, so load balancers drain the server before it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from grpc_health.v1 import health, health_pb2

from api.service import HealthReport, HealthService

__all__ = ["HealthMonitor"]

_log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    """Sets the health servicer's statuses from periodic dependency probes."""

    def __init__(self, probes: HealthService, services: tuple[str, ...], interval_s: float) -> None:
        self.servicer = health.aio.HealthServicer()
        self._probes = probes
        self._names = ("", *services)
        self._interval = interval_s
        self._task: asyncio.Task[None] | None = None
        self.last: HealthReport | None = None

    async def _set(self, status: int) -> None:
        for name in self._names:
            await self.servicer.set(name, status)

    async def check(self) -> HealthReport:
        """Probe the dependencies now and publish the outcome."""
        report = await self._probes.report()
        if self.last is None or report.status != self.last.status:
            _log.info("grpc health: %s", report.status)
        self.last = report
        await self._set(NOT_SERVING if report.status == "down" else SERVING)
        return report

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception as exc:  # a probe bug must not end the monitor
                _log.warning("health check failed: %s", exc)
                await self._set(NOT_SERVING)

    async def start(self) -> None:
        """First check now, then every interval."""
        await self.check()
        self._task = asyncio.create_task(self._run())

    async def shutdown(self) -> None:
        """Stop probing; every service ``NOT_SERVING`` from now on."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.servicer.enter_graceful_shutdown()
