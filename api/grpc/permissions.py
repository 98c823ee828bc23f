"""Which permission of :data:`api.service.permissions.PERMISSIONS` each gRPC method needs.

The same matrix as REST: a method maps to the permission of its REST route. The standard health
and reflection services are open; an ``llmopt.v1`` method missing here is refused for everyone.
"""

from __future__ import annotations

from api.service.permissions import Permission

__all__ = ["METHOD_PERMISSIONS", "OPEN_SERVICES", "PACKAGE", "is_open", "permission_for"]

PACKAGE = "llmopt.v1"
OPEN_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)

_O = f"/{PACKAGE}.OptimizationService/"
_C = f"/{PACKAGE}.ConfigService/"
_M = f"/{PACKAGE}.MetricsService/"
_I = f"/{PACKAGE}.IntegrationService/"
_A = f"/{PACKAGE}.AdminService/"

METHOD_PERMISSIONS: dict[str, Permission] = {
    _O + "GetRecommendation": "recommendations.read",
    _O + "ListRecommendations": "recommendations.read",
    _O + "WatchDecisions": "recommendations.read",
    _O + "OptimizationSession": "recommendations.read",  # each message checks its own too
    _O + "Analyze": "recommendations.analyze",
    _O + "Approve": "recommendations.act",
    _O + "Reject": "recommendations.act",
    _O + "Rollback": "recommendations.act",
    _C + "GetConfig": "config.read",
    _C + "ListVersions": "config.read",
    _C + "WatchConfig": "config.read",
    _C + "UpdateConfig": "config.write",
    _C + "RollbackConfig": "config.write",
    _M + "GetSummary": "metrics.read",
    _M + "QueryWindows": "metrics.read",
    _M + "ListInsights": "metrics.read",
    _M + "StreamMetrics": "metrics.read",
    _M + "RecordTelemetry": "telemetry.write",
    _I + "List": "integrations.read",
    _I + "Create": "integrations.write",
    _I + "Delete": "integrations.write",
    _I + "Test": "integrations.write",
    _A + "CreateApiKey": "admin",
    _A + "ListApiKeys": "admin",
    _A + "RevokeApiKey": "admin",
    _A + "ListAuditLog": "admin",
    _A + "Stats": "admin",
    _A + "Reload": "admin",
}


def is_open(method: str) -> bool:
    """Whether ``method`` (``/package.Service/Method``) needs no credentials."""
    return method.lstrip("/").split("/", 1)[0] in OPEN_SERVICES


def permission_for(method: str) -> Permission | None:
    """The permission ``method`` needs (``None``: unknown, refused for everyone)."""
    return METHOD_PERMISSIONS.get(method)
