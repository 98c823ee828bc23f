"""What :func:`api.rest.app.create_app` adds for the console: routes, static files, templates."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.rest.console.controller import ConsoleController, LoginController

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


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if abs(value) < 1e-12:  # rounding noise of a difference that is zero
        return "0"
    if abs(value) >= 1e5 or abs(value) < 10 ** -(digits + 2):
        return f"{value:.{digits}e}"
    return f"{value:.{digits}g}"


def _percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:.6f}" if abs(value) < 0.01 else f"${value:,.4f}"


def _hours(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1 / 60:
        return f"{value * 3600:.0f} s"
    if value < 1:
        return f"{value * 60:.0f} min"
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} days"


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _setup(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters.update(
        number=_number, percent=_percent, usd=_usd, when=_when, hours=_hours
    )
    engine.engine.globals["iso"] = lambda v: v.isoformat() if v is not None else ""


def console_template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja2 templates (autoescaped) with the console's number and time filters."""
    return TemplateConfig(
        directory=TEMPLATE_DIR, engine=JinjaTemplateEngine, engine_callback=_setup
    )
