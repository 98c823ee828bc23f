"""A console page that shows an API problem (404, 403, 503 ...) to a browser, not as JSON."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Response

__all__ = ["console_error_page"]


def console_error_page(
    status: int, problem: dict[str, Any], headers: dict[str, str] | None
) -> Response[str]:
    """The problem of a console request as a small, self-contained HTML page."""
    title = escape(str(problem.get("title", "Error")))
    detail = escape(str(problem.get("detail", "")))
    request_id = escape(str(problem.get("request_id", "")))
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{status} {title} · LLM Auto Optimizer</title>"
        '<link rel="stylesheet" href="/console/static/console.css"></head><body>'
        f'<main id="main" class="login"><h1>{status} {title}</h1>'
        f'<p class="error" role="alert">{detail}</p>'
        f'<p class="muted">Request id {request_id}.</p>'
        '<p><a href="/console/">Back to the fleet</a></p></main></body></html>'
    )
    return Response(body, status_code=status, media_type="text/html", headers=headers)
