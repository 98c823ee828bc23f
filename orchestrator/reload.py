"""Settings reload (SIGHUP and ``POST /api/v1/admin/reload``): load, validate, apply or keep.

What changes at runtime: the log level and format, the orchestrator's thresholds, intervals and
timeouts, and whatever each service applies in its ``reload(settings)`` hook (integrations,
rate limits, the processor's thresholds). Addresses and ports (Kafka, database, Redis, listen
ports) are read at start only: a reload that changes them is applied to everything else and
the log names the keys that need a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from core.errors import ConfigurationError
from core.settings import Settings
from orchestrator.manager import ServiceManager
from orchestrator.observability import configure_logging, log_format_for

__all__ = ["RESTART_ONLY", "ReloadOutcome", "SettingsReloader", "changed_keys"]

_log = structlog.get_logger(__name__)

#: Settings read once at start; a reload that changes them says a restart is needed.
RESTART_ONLY: frozenset[str] = frozenset(
    {
        "kafka.bootstrap_servers",
        "kafka.telemetry_topic",
        "kafka.dlq_topic",
        "kafka.partitions",
        "storage.database_url",
        "storage.redis_url",
        "storage.data_dir",
        "api.host",
        "api.port",
        "collector.host",
        "collector.http_port",
        "collector.grpc_port",
        "grpc.enabled",
        "grpc.host",
        "grpc.port",
        "grpc.tls_cert_path",
        "grpc.tls_key_path",
        "grpc.tls_client_ca_path",
        "grpc.max_receive_message_bytes",
        "grpc.max_send_message_bytes",
        "grpc.health_interval",
        "orchestrator.metrics_port",
        "orchestrator.otlp_endpoint",
        "orchestrator.supervise_processor",
    }
)


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
    """The ``section.key`` (and top-level) names whose values differ between two settings."""
    out = [k for k in ("env", "log_level") if getattr(old, k) != getattr(new, k)]
    for f in dataclasses.fields(Settings):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if not dataclasses.is_dataclass(before) or before == after:
            continue
        for key in dataclasses.fields(before):
            if getattr(before, key.name) != getattr(after, key.name):
                out.append(f"{f.name}.{key.name}")
    return out


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
            kafka = dataclasses.replace(
                fresh.kafka,
                bootstrap_servers=cur.bootstrap_servers,
                embedded_port=cur.embedded_port,
            )
            return fresh.with_overrides(kafka=kafka)
        return fresh
