"""The service layer shared by REST and gRPC: plain classes over storage, no transport."""

from api.service.health import DependencyCheck, HealthReport, HealthService
from api.service.metrics import MetricsQueries, MetricsSummary, SummaryTotals

__all__ = [
    "DependencyCheck",
    "HealthReport",
    "HealthService",
    "MetricsQueries",
    "MetricsSummary",
    "SummaryTotals",
]
