"""The service protocol, its state machine and the health it reports."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import structlog

from core.settings import Settings
from orchestrator.errors import IllegalTransitionError

__all__ = [
    "LEGAL_TRANSITIONS",
    "HealthResult",
    "HealthStatus",
    "Reloadable",
    "Service",
    "ServiceBase",
    "ServiceState",
    "check_transition",
    "is_legal_transition",
]

_log = structlog.get_logger(__name__)


class ServiceState(enum.StrEnum):
    """Where a service is in its life cycle."""

    INITIALIZING = "initializing"
    RUNNING = "running"
    DEGRADED = "degraded"
    SHUTTING_DOWN = "shutting_down"
    STOPPED = "stopped"
    FAILED = "failed"


_S = ServiceState

#: Every legal move of the state machine: ``current -> allowed targets``. Moving to
#: ``INITIALIZING`` from a running, degraded, failed or stopped service means a (re)start.
LEGAL_TRANSITIONS: Mapping[ServiceState, frozenset[ServiceState]] = MappingProxyType(
    {
        _S.INITIALIZING: frozenset({_S.RUNNING, _S.FAILED, _S.SHUTTING_DOWN, _S.STOPPED}),
        _S.RUNNING: frozenset({_S.DEGRADED, _S.SHUTTING_DOWN, _S.FAILED, _S.INITIALIZING}),
        _S.DEGRADED: frozenset({_S.RUNNING, _S.SHUTTING_DOWN, _S.FAILED, _S.INITIALIZING}),
        _S.SHUTTING_DOWN: frozenset({_S.STOPPED, _S.FAILED}),
        _S.STOPPED: frozenset({_S.INITIALIZING}),
        _S.FAILED: frozenset({_S.INITIALIZING, _S.SHUTTING_DOWN, _S.STOPPED}),
    }
)


def is_legal_transition(current: ServiceState, target: ServiceState) -> bool:
    """Tell whether the state machine allows moving from ``current`` to ``target``.

    Args:
        current: The state the service is in.
        target: The state it should move to.

    Returns:
        True when the move is in :data:`LEGAL_TRANSITIONS`; staying in place is not a move.
    """
    return target in LEGAL_TRANSITIONS[current]


def check_transition(current: ServiceState, target: ServiceState, service: str = "?") -> None:
    """Raise unless the state machine allows moving from ``current`` to ``target``.

    Args:
        current: The state the service is in.
        target: The state it should move to.
        service: The service's name, for the error message.

    Raises:
        IllegalTransitionError: When the move is not in :data:`LEGAL_TRANSITIONS`.
    """
    if not is_legal_transition(current, target):
        raise IllegalTransitionError(service, current.value, target.value)


class HealthStatus(enum.StrEnum):
    """What a health check found."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class HealthResult:
    """The outcome of one health check.

    Attributes:
        status: The verdict.
        detail: A short human explanation, empty when healthy.
        checks: Per-dependency detail, e.g. ``{"postgres": "ok", "redis": "timeout"}``.
    """

    status: HealthStatus
    detail: str = ""
    checks: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Service(Protocol):
    """A long-running part of the optimizer that the :class:`ServiceManager` supervises.

    ``name`` is unique among the managed services; ``depends_on`` names the services that must
    be running before this one starts; ``required`` means that the services depending on this one
    cannot run without it: when it fails for good they are stopped and marked failed, whereas a
    dependent of a non-required failed service keeps running, degraded.
    """

    @property
    def name(self) -> str:
        """The service's unique name."""
        ...

    @property
    def depends_on(self) -> tuple[str, ...]:
        """The names of the services this one needs."""
        ...

    @property
    def required(self) -> bool:
        """Whether the dependents of this service cannot run without it."""
        ...

    async def start(self) -> None:
        """Acquire resources and begin serving; return once ready, raise when it cannot."""
        ...

    async def stop(self) -> None:
        """Stop serving and release resources; safe to call on a half-started service."""
        ...

    async def health_check(self) -> HealthResult:
        """Report the service's health; raising counts as unhealthy."""
        ...

    async def recover(self) -> None:
        """Bring a failed service back; :class:`ServiceBase` does ``stop()`` then ``start()``."""
        ...


@runtime_checkable
class SelfRestarting(Protocol):
    """A service that restarts its own processes (the processor) and counts those restarts.

    The manager adds ``restarts`` to the restarts it did itself in ``service_restarts_total``.
    With ``retry_forever`` the manager never gives the service up: past ``max_restarts`` it
    keeps restarting it every :data:`~orchestrator.backoff.MAX_DELAY_S` seconds.
    """

    restarts: int
    retry_forever: bool


@runtime_checkable
class Reloadable(Protocol):
    """A service that applies reloaded settings (SIGHUP, ``POST /api/v1/admin/reload``).

    ``reload`` receives the new, already validated settings; it applies what can change while
    running (log level, thresholds, integrations, rate limits) and keeps the rest for its next
    start. Raising leaves the service as it was; the orchestrator logs the error per service.
    """

    async def reload(self, settings: Settings) -> None:
        """Apply ``settings``."""
        ...


class ServiceBase(ABC):
    """Convenience base for services: no dependencies, required, and recover = stop + start.

    Subclasses set ``name`` (and ``depends_on``/``required`` when they differ) and implement
    :meth:`start`, :meth:`stop` and :meth:`health_check`.
    """

    name: str = ""
    depends_on: tuple[str, ...] = ()
    required: bool = True

    @abstractmethod
    async def start(self) -> None:
        """Begin serving."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop serving."""

    async def health_check(self) -> HealthResult:
        """Report the health; the default says healthy."""
        return HealthResult(HealthStatus.HEALTHY)

    async def reload(self, settings: Settings) -> None:
        """Apply reloaded settings (see :class:`Reloadable`); the default changes nothing.

        Services that keep ``self._settings`` usually store the new settings here so that the
        next (re)start uses them, and apply at once what they can.
        """
        _log.debug("service_reload_ignored", service=self.name, env=settings.env)

    async def recover(self) -> None:
        """Stop the service (errors are ignored: it is already broken), then start it again."""
        try:
            await self.stop()
        except Exception as exc:
            _log.warning("service_stop_before_restart_failed", service=self.name, error=repr(exc))
        await self.start()
