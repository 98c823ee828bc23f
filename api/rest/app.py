"""The REST application factory."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from api.rest.auth import auth_middleware
from api.rest.controllers import HealthController, MetricsController
from api.rest.errors import exception_handlers
from api.rest.resources import lifespan
from core.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings) -> Litestar:
    """Build the REST app; resources are opened in its lifespan, not here."""
    prometheus = PrometheusConfig(app_name="llmopt_rest", group_path=True)
    app = Litestar(
        route_handlers=[HealthController, MetricsController, PrometheusController],
        middleware=[prometheus.middleware, auth_middleware],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(
            title="LLM Auto Optimizer",
            version="0.1.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin(), RedocRenderPlugin()],
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(
                        type="apiKey", name="x-api-key", security_scheme_in="header"
                    )
                }
            ),
            security=[{"apiKey": []}],
        ),
    )
    app.state.settings = settings
    return app
