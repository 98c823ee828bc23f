"""The orchestrator: supervises the optimizer's services (``python -m orchestrator``).

Generic machinery only; the concrete services live in :mod:`orchestrator.services`.
"""

from core.tracing import kafka_trace_headers
from orchestrator.backoff import restart_delay
from orchestrator.errors import IllegalTransitionError, UnknownDependencyError
from orchestrator.graph import start_order
from orchestrator.manager import ServiceManager
from orchestrator.metrics import (
    HEALTH_VALUES,
    STATE_CODES,
    ManagerCollector,
    MetricsServer,
    create_registry,
    serve_metrics,
)
from orchestrator.observability import configure_logging, configure_tracing
from orchestrator.registry import DurationObserver, SleepFunction
from orchestrator.reload import ReloadOutcome, SettingsReloader
from orchestrator.service import (
    LEGAL_TRANSITIONS,
    HealthResult,
    HealthStatus,
    Reloadable,
    Service,
    ServiceBase,
    ServiceState,
    check_transition,
    is_legal_transition,
)
from orchestrator.signals import ReloadCallback, install_signal_handlers

__all__ = [
    "HEALTH_VALUES",
    "LEGAL_TRANSITIONS",
    "STATE_CODES",
    "DurationObserver",
    "HealthResult",
    "HealthStatus",
    "IllegalTransitionError",
    "ManagerCollector",
    "MetricsServer",
    "ReloadCallback",
    "ReloadOutcome",
    "Reloadable",
    "Service",
    "ServiceBase",
    "ServiceManager",
    "ServiceState",
    "SettingsReloader",
    "SleepFunction",
    "UnknownDependencyError",
    "check_transition",
    "configure_logging",
    "configure_tracing",
    "create_registry",
    "install_signal_handlers",
    "is_legal_transition",
    "kafka_trace_headers",
    "restart_delay",
    "serve_metrics",
    "start_order",
]
