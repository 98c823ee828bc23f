"""Settings reload (SIGHUP and ``POST /api/v1/admin/reload``): load, validate, apply or keep.

What changes at runtime: the log level and format, the orchestrator's thresholds, intervals and
timeouts, and whatever each service applies in its ``reload(settings)`` hook (integrations,
rate limits, the processor's thresholds). Addresses and ports (Kafka, database, Redis, listen
ports) are read at start only: a reload that changes them is applied to everything else and
the log names the keys that need a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import structlog

from core.errors import ConfigurationError
from core.settings import Settings, entries, restart_only_keys
from orchestrator.manager import ServiceManager
from orchestrator.observability import configure_logging, log_format_for

__all__ = ["RESTART_ONLY", "ReloadOutcome", "SettingsReloader", "changed_keys"]

_log = structlog.get_logger(__name__)

#: Settings read once at start (``setting(..., restart=True)``); a reload that changes them
#: says a restart is needed.
RESTART_ONLY: frozenset[str] = restart_only_keys()


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did.

    Attributes:
        applied: False when the new settings were rejected and the old ones kept.
        error: Why they were rejected.
        changed: The ``section.key`` names whose values changed.
        restart_required: Those of ``changed`` that only a restart applies.
        service_errors: Services whose ``reload`` raised (they keep their old settings).
    """

    applied: bool
    error: str = ""
    changed: tuple[str, ...] = ()
    restart_required: tuple[str, ...] = ()
    service_errors: dict[str, str] = field(default_factory=dict)


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """The dotted keys (``api.port``) whose values differ between two settings."""
    out = ["env"] if old.env != new.env else []
    return out + [e.key for e in entries() if e.get(old) != e.get(new)]


class SettingsReloader:
    """Holds the current settings and replaces them on a valid reload.

    Args:
        settings: The settings the services run with (resolved: the embedded broker's address).
        manager: The service manager to hand the new settings to.
        load: Loads and validates the settings anew (``core.settings.load_settings``); raises
            :class:`~core.errors.ConfigurationError` when they are invalid.
    """

    def __init__(
        self, settings: Settings, manager: ServiceManager, load: Callable[[], Settings]
    ) -> None:
        self._settings = settings
        self._manager = manager
        self._load = load
        self._lock = asyncio.Lock()

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        return self._settings

    async def reload(self) -> ReloadOutcome:
        """Load, validate and apply; on any error keep the settings in force and log why."""
        async with self._lock:
            try:
                fresh = await asyncio.to_thread(self._load)
                fresh = self._keep_resolved(fresh)
                self._manager.apply_settings(fresh.orchestrator)
            except Exception as exc:
                error = str(exc) if isinstance(exc, ConfigurationError) else repr(exc)
                _log.error("reload_rejected_keeping_old_settings", error=error)
                return ReloadOutcome(applied=False, error=error)
            old, self._settings = self._settings, fresh
            changed = changed_keys(old, fresh)
            configure_logging(
                fresh.log_level, log_format_for(fresh.orchestrator.log_format, fresh.env)
            )
            service_errors = await self._manager.reload_services(fresh)
            restart = [k for k in changed if k in RESTART_ONLY]
            _log.info(
                "settings_reloaded",
                changed=changed,
                restart_required=restart,
                service_errors=service_errors,
                log_level=fresh.log_level,
            )
            return ReloadOutcome(
                applied=True,
                changed=tuple(changed),
                restart_required=tuple(restart),
                service_errors=service_errors,
            )

    async def reload_or_raise(self) -> None:
        """:meth:`reload` for the REST admin route: a rejected reload raises.

        Raises:
            ConfigurationError: When the new settings are invalid (the old ones stay).
        """
        outcome = await self.reload()
        if not outcome.applied:
            raise ConfigurationError(f"reload rejected, old settings kept: {outcome.error}")

    def _keep_resolved(self, fresh: Settings) -> Settings:
        """Keep the embedded broker's resolved address: it was chosen at start."""
        cur = self._settings.kafka
        if fresh.kafka.embedded and not cur.embedded:
            kafka = replace(
                fresh.kafka,
                bootstrap_servers=cur.bootstrap_servers,
                embedded_port=cur.embedded_port,
            )
            return fresh.with_overrides(kafka=kafka)
        return fresh
