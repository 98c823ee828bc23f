"""One controller per REST resource."""

from api.rest.controllers.admin import AdminController
from api.rest.controllers.auth import AuthController
from api.rest.controllers.config import ConfigController
from api.rest.controllers.deployments import DeploymentsController
from api.rest.controllers.health import HealthController, PrometheusMetricsController
from api.rest.controllers.integrations import IntegrationsController
from api.rest.controllers.metrics import MetricsController
from api.rest.controllers.optimize import OptimizeController
from api.rest.controllers.telemetry import TelemetryController

__all__ = [
    "AdminController",
    "AuthController",
    "ConfigController",
    "DeploymentsController",
    "HealthController",
    "IntegrationsController",
    "MetricsController",
    "OptimizeController",
    "PrometheusMetricsController",
    "TelemetryController",
]
