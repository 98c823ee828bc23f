"""The REST application factory."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig

from api.rest.auth import SecurityMiddleware, permission_guard
from api.rest.config_read import ConfigReadPath
from api.rest.console.app_parts import console_route_handlers, console_template_config
from api.rest.context import RequestContextMiddleware, before_send
from api.rest.controllers import (
    AdminController,
    AuthController,
    ConfigController,
    DeploymentsController,
    HealthController,
    IntegrationsController,
    MetricsController,
    OptimizeController,
    PrometheusMetricsController,
    TelemetryController,
)
from api.rest.encoding import MIN_COMPRESS_BYTES, SKIP_COMPRESSION
from api.rest.errors import exception_handlers
from api.rest.metrics import RequestMetricsMiddleware, request_metrics_config
from api.rest.openapi import (
    document_closed_bodies,
    document_integration_body,
    document_links,
    document_problems,
    document_telemetry_body,
    openapi_config,
)
from api.rest.resources import lifespan
from api.service import ReloadHook
from core.settings import Settings

__all__ = ["API_CONTROLLERS", "create_app"]

#: The guarded resources under ``/api/v1``.
API_CONTROLLERS = (
    TelemetryController,
    OptimizeController,
    DeploymentsController,
    ConfigController,
    MetricsController,
    IntegrationsController,
    AdminController,
    AuthController,
)


def create_app(
    settings: Settings,
    *,
    on_reload: ReloadHook | None = None,
    ingest: Any = None,
    config_manager: Any = None,
) -> Litestar:
    """Build the REST app; resources are opened in its lifespan, not here.

    Args:
        settings: The frozen settings.
        on_reload: What ``POST /api/v1/admin/reload`` calls (the orchestrator's SIGHUP
            handler); without it that route answers 503.
        ingest: A started :class:`collector.pipeline.TelemetryIngest` to share (the
            orchestrator's); by default the app starts its own when Kafka is configured.
        config_manager: A :class:`rollout.config_manager.ConfigManager` to use instead of a new one.
    """
    api = settings.api
    prometheus = request_metrics_config("llmopt_rest")
    app = Litestar(
        route_handlers=[
            HealthController,
            PrometheusMetricsController,
            *API_CONTROLLERS,
            *console_route_handlers(),
        ],
        middleware=[
            RequestContextMiddleware(api.request_timeout.total_seconds()),
            prometheus.middleware,
            SecurityMiddleware(),
        ],
        guards=[permission_guard],
        before_send=[before_send],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        compression_config=CompressionConfig(
            backend="brotli",
            brotli_gzip_fallback=True,
            minimum_size=MIN_COMPRESS_BYTES,
            exclude_opt_key=SKIP_COMPRESSION,  # routes that send pre-compressed bodies
        ),
        cors_config=CORSConfig(allow_origins=list(api.cors_origins)) if api.cors_origins else None,
        request_max_body_size=api.max_body_bytes,
        openapi_config=openapi_config(),
        template_config=console_template_config(),
    )
    document_problems(app.openapi_schema)
    document_links(app.openapi_schema)
    document_closed_bodies(app.openapi_schema)
    document_integration_body(app.openapi_schema)
    document_telemetry_body(app.openapi_schema, api.max_batch_events)
    app.state.settings = settings
    app.state.hooks = {"on_reload": on_reload, "ingest": ingest, "config_manager": config_manager}
    # Config reads skip the router (same steps, see api.rest.config_read); the rest go through.
    app.asgi_handler = ConfigReadPath(
        app, app.asgi_handler, RequestMetricsMiddleware(app.asgi_handler, prometheus)
    )
    return app
