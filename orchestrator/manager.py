"""The service manager: starts services in dependency order, watches them, stops them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import structlog

from core.errors import ConfigurationError, ServiceStartError
from core.settings import OrchestratorSettings, Settings
from orchestrator.backoff import MAX_DELAY_S, restart_delay
from orchestrator.registry import ServiceRegistry, SleepFunction, describe_error
from orchestrator.service import (
    HealthResult,
    HealthStatus,
    Reloadable,
    SelfRestarting,
    Service,
    ServiceState,
)

__all__ = ["ServiceManager"]

_log = structlog.get_logger(__name__)
_S = ServiceState
_UP = (_S.RUNNING, _S.DEGRADED)


class ServiceManager(ServiceRegistry):
    """Supervise a set of services: start, health-monitor, restart, degrade, stop.

    Every service begins ``INITIALIZING``. Drive the manager from one task at a time: set the
    health monitor's ``stop_event`` and await the monitor before calling :meth:`stop_all`.
    The read-only views (``states()``, ``health()``, ``restarts()``, ``uptime_seconds(name)``)
    return snapshots and may be called from another thread, e.g. the metrics server's.
    """

    @classmethod
    def from_settings(
        cls,
        services: Iterable[Service],
        settings: OrchestratorSettings,
        *,
        sleep: SleepFunction = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> ServiceManager:
        """Build a manager from the orchestrator settings (see the constructor for the rest)."""
        return cls(
            services,
            health_interval=settings.health_interval,
            shutdown_timeout=settings.shutdown_timeout,
            start_timeout=settings.start_timeout,
            failure_threshold=settings.failure_threshold,
            max_restarts=settings.max_restarts,
            health_timeout=min(settings.health_timeout, settings.health_interval),
            sleep=sleep,
            clock=clock,
        )

    def apply_settings(self, settings: OrchestratorSettings) -> None:
        """Take reloaded thresholds, intervals and timeouts; they apply from the next use.

        Raises:
            ConfigurationError: When a number is out of range (nothing is changed then).
        """
        if settings.failure_threshold < 1 or settings.max_restarts < 0:
            raise ConfigurationError(
                "need failure_threshold >= 1 and max_restarts >= 0, got "
                f"{settings.failure_threshold} and {settings.max_restarts}"
            )
        self._health_interval = settings.health_interval.total_seconds()
        self._health_timeout = min(
            settings.health_timeout, settings.health_interval
        ).total_seconds()
        self._shutdown_timeout = settings.shutdown_timeout.total_seconds()
        self._start_timeout = settings.start_timeout.total_seconds()
        self._failure_threshold = settings.failure_threshold
        self._max_restarts = settings.max_restarts

    async def reload_services(self, settings: Settings) -> dict[str, str]:
        """Hand reloaded settings to every service that has a ``reload`` (see ``Reloadable``).

        Returns:
            The services whose reload raised, with the error; the others took the settings.
        """
        errors: dict[str, str] = {}
        for name in self._order:
            service = self._services[name]
            if not isinstance(service, Reloadable):
                continue
            timeout = self._shutdown_timeout + self._start_timeout
            try:
                await self._timed(name, "reload", service.reload(settings), timeout)
            except Exception as exc:
                errors[name] = describe_error(exc, timeout)
                _log.error("service_reload_failed", service=name, reason=errors[name])
        return errors

    async def start_all(self) -> None:
        """Start every service in dependency order, each within the start timeout.

        Raises:
            ServiceStartError: When a service fails or times out; the services already started
                have then been stopped in reverse order, and the failed one is marked failed.
        """
        for name in self._order:
            _log.info("service_starting", service=name)
            try:
                await self._timed(name, "start", self._services[name].start(), self._start_timeout)
            except Exception as exc:
                reason = describe_error(exc, self._start_timeout)
                _log.error("service_start_failed", service=name, reason=reason)
                self._set_state(name, _S.FAILED)
                await self.stop_all()
                raise ServiceStartError(name, reason) from exc
            self._mark_up(name)
            _log.info("service_started", service=name)

    async def stop_all(self) -> None:
        """Stop every service in reverse start order, each within the shutdown timeout.

        A stop that fails or times out is logged and that service ends ``FAILED``; the others
        still stop and end ``STOPPED``. Services that are not running are not called.
        """
        for name in reversed(self._order):
            if name not in self._running:
                if self._states[name] not in (_S.STOPPED, _S.FAILED):
                    self._set_state(name, _S.STOPPED)
                continue
            self._set_state(name, _S.SHUTTING_DOWN)
            stopped = await self._stop_one(name)
            self._set_state(name, _S.STOPPED if stopped else _S.FAILED)

    async def run_health_monitor(self, stop_event: asyncio.Event) -> None:
        """Check every service's health each ``health_interval`` until ``stop_event`` is set.

        Args:
            stop_event: Ends the loop; it also cuts short a backoff wait in progress.
        """
        self._stop_event = stop_event
        try:
            while not stop_event.is_set():
                await self._pause(self._health_interval)
                if stop_event.is_set():
                    break
                await self.check_health_once()
        finally:
            self._stop_event = None

    async def check_health_once(self) -> None:
        """Run one round of health checks, restarts and dependents' state updates.

        First, a service marked ``FAILED`` for good is probed: when its health check says
        healthy again (what it depends on outside came back, e.g. PostgreSQL) it gets a fresh
        series of ``max_restarts`` restarts, beginning now. An unhealthy result counts towards
        the failure threshold only while the service's
        dependencies are up: a service that is sick because a dependency is down stays degraded
        instead of being restarted. After ``failure_threshold`` consecutive counted failures the
        service is restarted (``INITIALIZING``, backoff wait, ``recover()``); once it has used
        ``max_restarts`` restarts it is marked ``FAILED`` for good, unless it retries for ever
        (:class:`~orchestrator.service.SelfRestarting`, the processor): that one is restarted
        every ``MAX_DELAY_S`` (60 s) for as long as it fails.
        """
        await self._revive_given_up()
        names = [n for n in self._order if self._states[n] in _UP]
        results = await asyncio.gather(*(self._check(n) for n in names))
        self._health.update(zip(names, results, strict=True))
        for name, result in zip(names, results, strict=True):
            if result.status is not HealthStatus.UNHEALTHY:
                self._failures[name] = 0
            elif not any(self._is_down(d) for d in self._services[name].depends_on):
                self._failures[name] += 1
                _log.warning(
                    "service_unhealthy",
                    service=name,
                    detail=result.detail,
                    consecutive=self._failures[name],
                )
        await self._update_dependents()
        for name in self._order:
            if self._stopping():
                return
            state = self._states[name]
            if name in self._given_up:
                continue
            due = state in _UP and self._failures[name] >= self._failure_threshold
            if due or state is _S.FAILED:  # FAILED and not given up: a restart failed; retry
                await self._recover(name)
                await self._update_dependents()

    async def _revive_given_up(self) -> None:
        """Restart given-up services whose health check passes again (see check_health_once)."""
        names = [n for n in self._order if n in self._given_up and self._states[n] is _S.FAILED]
        if not names:
            return
        results = await asyncio.gather(*(self._check(n) for n in names))
        for name, result in zip(names, results, strict=True):
            if result.status is not HealthStatus.HEALTHY or self._stopping():
                continue
            _log.info("service_reviving", service=name, restarts=self._restarts[name])
            self._given_up.discard(name)
            self._restarts[name] = 0
            self._failures[name] = 0
            await self._recover(name)
            await self._update_dependents()

    async def _check(self, name: str) -> HealthResult:
        try:
            return await self._timed(
                name, "health_check", self._services[name].health_check(), self._health_timeout
            )
        except Exception as exc:
            reason = describe_error(exc, self._health_timeout)
            return HealthResult(HealthStatus.UNHEALTHY, f"health check failed: {reason}")

    def _retries_forever(self, name: str) -> bool:
        service = self._services[name]
        return isinstance(service, SelfRestarting) and service.retry_forever

    async def _recover(self, name: str) -> None:
        attempt = self._restarts[name]
        past_budget = attempt >= self._max_restarts
        if past_budget and not self._retries_forever(name):
            self._give_up(name)
            return
        self._restarts[name] = attempt + 1
        self._restarts_total[name] += 1
        self._set_state(name, _S.INITIALIZING)
        self._started_at.pop(name, None)
        await self._update_dependents()
        # Past its budget, a service that must not be given up (the processor: ingest for
        # every app) is retried at the longest backoff instead of being marked failed for good.
        delay = MAX_DELAY_S if past_budget else restart_delay(attempt)
        _log.warning("service_restarting", service=name, attempt=attempt + 1, delay_s=delay)
        await self._pause(delay)
        if self._stopping():
            return
        timeout = self._shutdown_timeout + self._start_timeout
        try:
            await self._timed(name, "recover", self._services[name].recover(), timeout)
        except Exception as exc:
            reason = describe_error(exc, timeout)
            _log.error("service_restart_failed", service=name, reason=reason)
            self._set_state(name, _S.FAILED)
            if self._restarts[name] >= self._max_restarts and not self._retries_forever(name):
                self._give_up(name)
            return
        self._failures[name] = 0
        self._health.pop(name, None)
        self._mark_up(name)
        _log.info("service_restarted", service=name, attempt=attempt + 1)

    def _give_up(self, name: str) -> None:
        self._given_up.add(name)
        self._started_at.pop(name, None)
        if self._states[name] is not _S.FAILED:
            self._set_state(name, _S.FAILED)
        _log.error("service_failed", service=name, restarts=self._restarts[name])

    async def _update_dependents(self) -> None:
        """Set each up service to RUNNING or DEGRADED from its own and its dependencies' health.

        First, services that lost a *required* dependency for good are stopped (dependents
        before their dependencies) and fail for good too.
        """
        gone = set(self._given_up)
        doomed: list[str] = []
        for name in self._order:
            deps = self._services[name].depends_on
            if self._states[name] in _UP and any(
                d in gone and self._services[d].required for d in deps
            ):
                doomed.append(name)
                gone.add(name)
        for name in reversed(doomed):
            _log.error("service_dependency_lost", service=name)
            self._set_state(name, _S.SHUTTING_DOWN)
            await self._stop_one(name)
            self._set_state(name, _S.FAILED)
            self._give_up(name)
        for name in self._order:
            if self._states[name] not in _UP:
                continue
            impaired = [d for d in self._services[name].depends_on if self._is_down(d)]
            own = self._health.get(name)
            sick = own is not None and own.status is not HealthStatus.HEALTHY
            target = _S.DEGRADED if impaired or sick else _S.RUNNING
            if target is not self._states[name]:
                _log.info("service_" + target.value, service=name, impaired=impaired)
                self._set_state(name, target)
