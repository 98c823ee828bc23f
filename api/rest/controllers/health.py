"""Open endpoints: ``/health*`` (per dependency, liveness, readiness) and ``/metrics``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from api.rest.resources import resources_of
from api.service import HealthReport

__all__ = ["HealthController", "PrometheusMetricsController"]


class HealthController(Controller):
    """Health of the REST service and of what it depends on."""

    path = "/health"
    tags = ["health"]

    @get("/", summary="Health of every dependency; 503 when a required one is down")
    async def health(self, request: Request) -> Response[HealthReport]:  # type: ignore[type-arg]
        """Probe the database, Kafka and the cache."""
        report = await resources_of(request.app).health.report()
        code = HTTP_503_SERVICE_UNAVAILABLE if report.status == "down" else HTTP_200_OK
        return Response(report, status_code=code)

    @get("/live", summary="The process answers")
    async def live(self) -> dict[str, str]:
        """Liveness: the server is running."""
        return {"status": "ok"}

    @get("/ready", summary="Ready to serve: required dependencies are up")
    async def ready(self, request: Request) -> Response[dict[str, str]]:  # type: ignore[type-arg]
        """Readiness: 503 until every required dependency answers."""
        report = await resources_of(request.app).health.report()
        if report.status == "down":
            return Response({"status": "not ready"}, status_code=HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"status": "ready"}, status_code=HTTP_200_OK)


class PrometheusMetricsController(Controller):
    """``/metrics``: the REST service's Prometheus metrics (documented as text, not JSON)."""

    path = "/metrics"
    tags = ["health"]

    @get("/", media_type=CONTENT_TYPE_LATEST, summary="Prometheus metrics (text format)")
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """Request counts and durations per route, process metrics.

        Under several server workers, ``app.state.metrics_registry`` sums every worker's
        (see :mod:`api.rest.server`); otherwise this process's registry.
        """
        registry = request.app.state.get("metrics_registry") or REGISTRY
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
