"""One controller per REST resource."""

from api.rest.controllers.health import HealthController
from api.rest.controllers.metrics import MetricsController

__all__ = ["HealthController", "MetricsController"]
