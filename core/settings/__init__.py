"""Settings: one frozen dataclass per section, each field declared once with ``setting(...)``.

Sources: ``settings.toml``, ``.secrets.toml`` and ``LLMOPT_*`` variables (``__`` for nesting),
read by dynaconf and checked by :func:`load_settings` against each field's rule. Each field's
default, rule and doc live in its metadata (:mod:`core.settings.spec`); the validation, the
``LLMOPT_*`` names (:meth:`Settings.as_env`), the keys a reload cannot apply
(:func:`restart_only_keys`) and the configuration reference (``python -m
core.settings.reference``) are derived from it. A new setting is one ``setting(...)`` field.
"""

from core.settings.analyzers import (
    AnalyzerSettings,
    AnomalySettings,
    CachePotentialSettings,
    DriftSettings,
)
from core.settings.api import ApiRateLimitSettings, ApiSettings
from core.settings.canary import BudgetSettings, CanarySettings
from core.settings.collector import CollectorSettings
from core.settings.decisions import (
    CacheStrategySettings,
    DecisionSettings,
    ProviderLimit,
    RateLimitStrategySettings,
)
from core.settings.grpc import GrpcSettings
from core.settings.integrations import (
    DEFAULT_ROUTES,
    ROUTE_EVENTS,
    ROUTE_TARGETS,
    SEVERITIES,
    AnthropicSettings,
    GithubSettings,
    IntegrationSettings,
    JiraSettings,
    RouteRule,
    SlackSettings,
)
from core.settings.kafka import KafkaSettings
from core.settings.loader import SettingsDeprecationWarning, load_settings
from core.settings.orchestrator import OrchestratorSettings
from core.settings.processor import ModelPrice, ProcessorSettings
from core.settings.root import LOG_LEVELS, Settings, entries, section_types
from core.settings.spec import ENV_PREFIX, Entry, Spec, setting, updated
from core.settings.storage import StorageSettings

__all__ = [
    "DEFAULT_ROUTES",
    "ENV_PREFIX",
    "LOG_LEVELS",
    "ROUTE_EVENTS",
    "ROUTE_TARGETS",
    "SEVERITIES",
    "AnalyzerSettings",
    "AnomalySettings",
    "AnthropicSettings",
    "ApiRateLimitSettings",
    "ApiSettings",
    "BudgetSettings",
    "CachePotentialSettings",
    "CacheStrategySettings",
    "CanarySettings",
    "CollectorSettings",
    "DecisionSettings",
    "DriftSettings",
    "Entry",
    "GithubSettings",
    "GrpcSettings",
    "IntegrationSettings",
    "JiraSettings",
    "KafkaSettings",
    "ModelPrice",
    "OrchestratorSettings",
    "ProcessorSettings",
    "ProviderLimit",
    "RateLimitStrategySettings",
    "RouteRule",
    "Settings",
    "SettingsDeprecationWarning",
    "SlackSettings",
    "Spec",
    "StorageSettings",
    "entries",
    "load_settings",
    "restart_only_keys",
    "section_types",
    "setting",
    "updated",
]


def restart_only_keys() -> frozenset[str]:
    """The keys read once at start: a reload that changes them says a restart is needed."""
    return frozenset(e.key for e in entries() if e.spec.restart)
