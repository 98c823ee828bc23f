"""The whole settings tree: one field per section."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from datetime import timedelta
from typing import Any

from core.settings.analyzers import AnalyzerSettings
from core.settings.api import ApiSettings
from core.settings.canary import BudgetSettings, CanarySettings
from core.settings.collector import CollectorSettings
from core.settings.decisions import DecisionSettings
from core.settings.grpc import GrpcSettings
from core.settings.integrations import IntegrationSettings
from core.settings.kafka import KafkaSettings
from core.settings.orchestrator import OrchestratorSettings
from core.settings.processor import ProcessorSettings
from core.settings.rules import OneOf
from core.settings.spec import ENV_PREFIX, Entry, section, setting, walk
from core.settings.storage import StorageSettings

__all__ = ["LOG_LEVELS", "Settings", "entries", "section_types"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the optimizer, frozen; built once by :func:`load_settings`.

    ``env`` is the dynaconf environment in force (``LLMOPT_ENV``), not a setting of its own.
    """

    env: str = field(default="development")
    log_level: str = setting("INFO", "log level", OneOf(LOG_LEVELS))
    kafka: KafkaSettings = section(KafkaSettings)
    storage: StorageSettings = section(StorageSettings)
    processor: ProcessorSettings = section(ProcessorSettings)
    api: ApiSettings = section(ApiSettings)
    orchestrator: OrchestratorSettings = section(
        OrchestratorSettings, OrchestratorSettings.__doc__ or ""
    )
    analyzers: AnalyzerSettings = section(AnalyzerSettings)
    budgets: BudgetSettings = section(BudgetSettings)
    canary: CanarySettings = section(CanarySettings)
    collector: CollectorSettings = section(CollectorSettings)
    decisions: DecisionSettings = section(DecisionSettings)
    integrations: IntegrationSettings = section(
        IntegrationSettings, IntegrationSettings.__doc__ or ""
    )
    grpc: GrpcSettings = section(GrpcSettings)

    def with_overrides(self, **sections: Any) -> Settings:
        """Return a copy with whole sections replaced (tests, resolved embedded addresses)."""
        return replace(self, **sections)

    def as_env(self) -> dict[str, str]:
        """The ``LLMOPT_*`` variables that reproduce these settings in a child process."""
        out = {f"{ENV_PREFIX}_ENV": self.env}
        for entry in entries():
            out[entry.env] = _env_text(entry.get(self))
        return out


def entries() -> Iterator[Entry]:
    """Every setting of :class:`Settings` (``env`` is the environment, not a setting)."""
    return walk(Settings, skip=lambda key: key == "env")


def section_types() -> dict[str, type]:
    """The sections of :class:`Settings` (name → frozen dataclass), in declaration order."""
    return {f.name: type(f.default) for f in fields(Settings) if is_dataclass(f.default)}


def _plain(value: Any) -> Any:
    """JSON-ready form of a settings value (dataclasses inside mappings and sequences)."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _env_text(value: Any) -> str:
    # '@str' keeps dynaconf from parsing the value as TOML (e.g. "1e3" or "true").
    if isinstance(value, timedelta):
        return f"@str {value.total_seconds()}s"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping | list | tuple):
        return "@json " + json.dumps(_plain(value))
    return f"@str {value}"
