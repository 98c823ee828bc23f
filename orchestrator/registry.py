"""Bookkeeping shared by the service manager: services, states, health, restarts, uptimes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import TypeVar

import structlog

from core.errors import ConfigurationError
from orchestrator.graph import start_order
from orchestrator.service import (
    HealthResult,
    HealthStatus,
    SelfRestarting,
    Service,
    ServiceState,
    check_transition,
)

__all__ = ["DurationObserver", "ServiceRegistry", "SleepFunction"]

#: ``asyncio.sleep``-like coroutine function; injected so tests record delays instead of waiting.
SleepFunction = Callable[[float], Awaitable[None]]

#: Told ``(service, operation, seconds)`` after every start, stop, health check and recover.
DurationObserver = Callable[[str, str, float], None]

_T = TypeVar("_T")

_log = structlog.get_logger(__name__)
_S = ServiceState
_DOWN_STATES = frozenset({_S.INITIALIZING, _S.SHUTTING_DOWN, _S.STOPPED, _S.FAILED})


class ServiceRegistry:
    """The managed services and what is known about them; :class:`ServiceManager` drives it."""

    def __init__(
        self,
        services: Iterable[Service],
        *,
        health_interval: timedelta,
        shutdown_timeout: timedelta,
        start_timeout: timedelta,
        failure_threshold: int = 3,
        max_restarts: int = 3,
        health_timeout: timedelta | None = None,
        sleep: SleepFunction = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Register the services and compute their start order.

        Args:
            services: The services, in registration order (ties in the start order follow it).
            health_interval: Time between two rounds of health checks.
            shutdown_timeout: Longest wait for one service's ``stop()``.
            start_timeout: Longest wait for one service's ``start()``.
            failure_threshold: Consecutive failed health checks that trigger a restart.
            max_restarts: Restarts allowed per service before it is marked failed for good.
            health_timeout: Longest wait for one health check; defaults to ``health_interval``.
            sleep: Coroutine function used for every wait (backoff and interval).
            clock: Monotonic clock in seconds, for uptimes.

        Raises:
            ConfigurationError: When two services share a name or a number is out of range.
            UnknownDependencyError: When a service depends on an unregistered name.
            DependencyCycleError: When the dependencies form a cycle.
        """
        self._services: dict[str, Service] = {}
        for service in services:
            if service.name in self._services:
                raise ConfigurationError(f"two services are named {service.name!r}")
            self._services[service.name] = service
        if failure_threshold < 1 or max_restarts < 0:
            raise ConfigurationError(
                "need failure_threshold >= 1 and max_restarts >= 0, got "
                f"{failure_threshold} and {max_restarts}"
            )
        self._order = start_order({n: s.depends_on for n, s in self._services.items()})
        self._health_interval = health_interval.total_seconds()
        self._health_timeout = (health_timeout or health_interval).total_seconds()
        self._shutdown_timeout = shutdown_timeout.total_seconds()
        self._start_timeout = start_timeout.total_seconds()
        self._failure_threshold = failure_threshold
        self._max_restarts = max_restarts
        self._sleep = sleep
        self._clock = clock
        self._states = dict.fromkeys(self._order, _S.INITIALIZING)
        self._health: dict[str, HealthResult] = {}
        self._restarts = dict.fromkeys(self._order, 0)  # this series, against max_restarts
        self._restarts_total = dict.fromkeys(self._order, 0)  # ever (a counter: never reset)
        self._failures = dict.fromkeys(self._order, 0)
        self._started_at: dict[str, float] = {}
        self._running: set[str] = set()  # start() succeeded and stop() not called since
        self._given_up: set[str] = set()
        self._stop_event: asyncio.Event | None = None
        self._observers: list[DurationObserver] = []
        self._transitions: list[tuple[str, ServiceState, ServiceState]] = []

    def add_duration_observer(self, observer: DurationObserver) -> None:
        """Call ``observer(service, operation, seconds)`` after each call into a service."""
        self._observers.append(observer)

    async def _timed(self, name: str, operation: str, call: Awaitable[_T], limit: float) -> _T:
        """Await ``call`` within ``limit`` seconds and report how long it took (also failures)."""
        began = time.perf_counter()
        try:
            return await asyncio.wait_for(call, limit)
        finally:
            elapsed = time.perf_counter() - began
            for observer in self._observers:
                observer(name, operation, elapsed)

    # ---- read-only views (snapshots; safe to call from the metrics server's thread) ---------

    @property
    def order(self) -> list[str]:
        """The start order (the stop order is its reverse)."""
        return list(self._order)

    def states(self) -> dict[str, ServiceState]:
        """Each service's current state, in start order."""
        return dict(self._states)

    def health(self) -> dict[str, HealthResult]:
        """Each service's last health-check result (services not checked yet are absent)."""
        return dict(self._health)

    def restarts(self) -> dict[str, int]:
        """How many times each service was restarted, ever (a counter, never reset).

        The health monitor's restarts, plus those a
        :class:`~orchestrator.service.SelfRestarting` service did itself.
        """
        out = dict(self._restarts_total)
        for name, service in self._services.items():
            if isinstance(service, SelfRestarting):
                out[name] += service.restarts
        return out

    def transitions(self) -> list[tuple[str, ServiceState, ServiceState]]:
        """Every state change so far, in order: ``(service, from, to)``."""
        return list(self._transitions)

    def uptime_seconds(self, name: str) -> float:
        """Seconds since ``name`` last started or restarted; 0 while it is not up."""
        started = self._started_at.get(name)
        return 0.0 if started is None else max(0.0, self._clock() - started)

    # ---- helpers for the manager -----------------------------------------------------------

    def _set_state(self, name: str, target: ServiceState) -> None:
        current = self._states[name]
        check_transition(current, target, name)
        self._states[name] = target
        self._transitions.append((name, current, target))
        _log.debug("service_state", service=name, source=current.value, target=target.value)

    def _mark_up(self, name: str) -> None:
        self._set_state(name, _S.RUNNING)
        self._running.add(name)
        self._started_at[name] = self._clock()

    def _is_down(self, name: str) -> bool:
        result = self._health.get(name)
        unhealthy = result is not None and result.status is HealthStatus.UNHEALTHY
        return unhealthy or self._states[name] in _DOWN_STATES

    async def _stop_one(self, name: str) -> bool:
        """Call ``stop()`` within the shutdown timeout; log and return False when it fails."""
        self._running.discard(name)
        self._started_at.pop(name, None)
        _log.info("service_stopping", service=name)
        try:
            await self._timed(name, "stop", self._services[name].stop(), self._shutdown_timeout)
        except Exception as exc:
            _log.error(
                "service_stop_failed",
                service=name,
                reason=describe_error(exc, self._shutdown_timeout),
            )
            return False
        _log.info("service_stopped", service=name)
        return True

    def _stopping(self) -> bool:
        return self._stop_event is not None and self._stop_event.is_set()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` with the injected sleep; return early once the monitor stops."""
        event = self._stop_event
        if event is None:
            await self._sleep(seconds)
            return
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waiter):
                task.cancel()
            await asyncio.gather(sleeper, waiter, return_exceptions=True)


def describe_error(exc: BaseException, timeout: float) -> str:
    """Say in one line why a service call awaited with ``timeout`` seconds failed."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s"
    return f"{type(exc).__name__}: {exc}"
