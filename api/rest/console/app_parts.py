"""What :func:`api.rest.app.create_app` adds for the console: routes, static files, templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.rest.console.controller import ConsoleController, LoginController
from api.rest.console.formatting import FILTERS

__all__ = ["STATIC_DIR", "TEMPLATE_DIR", "console_route_handlers", "console_template_config"]

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
TEMPLATE_DIR = _HERE / "templates"


def console_route_handlers() -> list[Any]:
    """The console's controllers and its static files (open: no credentials needed)."""
    static = create_static_files_router(
        path="/console/static",
        directories=[STATIC_DIR],
        opt={"permission": None},
        include_in_schema=False,
        send_as_attachment=False,
    )
    return [LoginController, ConsoleController, static]


def _setup(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters.update(FILTERS)
    engine.engine.globals["iso"] = lambda v: v.isoformat() if v is not None else ""


def console_template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja2 templates (autoescaped) with the console's number and time filters."""
    return TemplateConfig(
        directory=TEMPLATE_DIR, engine=JinjaTemplateEngine, engine_callback=_setup
    )
