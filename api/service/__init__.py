"""The service layer shared by REST and gRPC: plain classes over storage, no transport.

Every REST controller and gRPC servicer is a thin adapter over these; errors are
:mod:`core.errors` exceptions, mapped once per transport.
"""

from api.service.admin import AdminService, CreatedKey, ReloadHook, Stats
from api.service.auth import Authenticator, IssuedToken, Principal
from api.service.config_known import ConfigRead
from api.service.configs import ConfigDiff, ConfigService
from api.service.deployments import DeploymentPage, DeploymentQueries
from api.service.health import DependencyCheck, HealthReport, HealthService
from api.service.integrations import (
    Integration,
    IntegrationInput,
    IntegrationPatch,
    IntegrationService,
    TestResult,
)
from api.service.layer import ServiceLayer, open_service_layer
from api.service.metrics import MetricsQueries, MetricsSummary, SummaryTotals
from api.service.permissions import PERMISSIONS, Permission, allowed
from api.service.rate_limit import RateDecision, RateLimiter, open_limiter
from api.service.recommendations import Analysis, RecommendationDetail, RecommendationService
from api.service.series import TimeSeries
from api.service.telemetry import TelemetryAccepted, TelemetryService

__all__ = [
    "PERMISSIONS",
    "AdminService",
    "Analysis",
    "Authenticator",
    "ConfigDiff",
    "ConfigRead",
    "ConfigService",
    "CreatedKey",
    "DependencyCheck",
    "DeploymentPage",
    "DeploymentQueries",
    "HealthReport",
    "HealthService",
    "Integration",
    "IntegrationInput",
    "IntegrationPatch",
    "IntegrationService",
    "IssuedToken",
    "MetricsQueries",
    "MetricsSummary",
    "Permission",
    "Principal",
    "RateDecision",
    "RateLimiter",
    "RecommendationDetail",
    "RecommendationService",
    "ReloadHook",
    "ServiceLayer",
    "Stats",
    "SummaryTotals",
    "TelemetryAccepted",
    "TelemetryService",
    "TestResult",
    "TimeSeries",
    "allowed",
    "open_limiter",
    "open_service_layer",
]
