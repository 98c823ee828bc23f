"""The orchestrator: supervises the optimizer's services (``python -m orchestrator``).

Generic machinery only; the concrete services live in :mod:`orchestrator.services`.
"""

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
from orchestrator.registry import SleepFunction
from orchestrator.service import (
    LEGAL_TRANSITIONS,
    HealthResult,
    HealthStatus,
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
    "HealthResult",
    "HealthStatus",
    "IllegalTransitionError",
    "ManagerCollector",
    "MetricsServer",
    "ReloadCallback",
    "Service",
    "ServiceBase",
    "ServiceManager",
    "ServiceState",
    "SleepFunction",
    "UnknownDependencyError",
    "check_transition",
    "create_registry",
    "install_signal_handlers",
    "is_legal_transition",
    "restart_delay",
    "serve_metrics",
    "start_order",
]
