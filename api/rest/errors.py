"""The one place that maps errors to HTTP responses: RFC 9457 problem details.

Every error answer is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail``, ``instance`` and ``request_id`` (plus ``errors`` for invalid parameters). Optimizer
errors map by kind; Litestar's own HTTP errors keep their status; a value the database refuses
is a 400; a database that cannot be reached is a 503 whose body never repeats connection
details; anything else is a logged 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

from api.rest.console.access import is_console, wants_html
from api.rest.console.error_page import console_error_page
from api.rest.context import request_id_of
from core.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OptimizerError,
    OverloadedError,
    PermissionDeniedError,
    StorageUnavailableError,
    ValidationError,
)

_log = logging.getLogger(__name__)

__all__ = ["PROBLEM_JSON", "exception_handlers", "problem_for", "status_of"]

PROBLEM_JSON = "application/problem+json"

_STATUS: tuple[tuple[type[OptimizerError], int], ...] = (
    (ValidationError, 400),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (OverloadedError, 429),
    (ConfigurationError, 503),
    (StorageUnavailableError, 503),
)


def status_of(exc: OptimizerError) -> int:
    """The HTTP status of an optimizer error."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def problem_for(
    exc: Exception, method: str, path: str, request_id: str
) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """Status, problem body and headers that answer ``exc`` (logged as its kind needs)."""
    headers: dict[str, str] | None = None
    extra: dict[str, Any] | None = None
    if isinstance(exc, OptimizerError):
        status, detail = status_of(exc), str(exc)
        if isinstance(exc, OverloadedError):
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        if status >= 500:
            _log.warning("%s: %s", type(exc).__name__, exc)
    elif isinstance(exc, HTTPException):
        status, detail = exc.status_code, str(exc.detail)
        headers = dict(exc.headers or {})
        extra = {"errors": exc.extra} if exc.extra else None
    elif isinstance(exc, OperationalError | InterfaceError):
        _log.warning("database unavailable: %s", exc.__class__.__name__)
        status, detail = 503, "database unavailable"
    elif isinstance(exc, DataError):
        # The database refused a value the API let through (e.g. a NUL character in a string).
        status, detail = 400, "a value cannot be stored (for example a NUL character)"
    else:
        _log.error(
            "unhandled error on %s %s (request_id %s)", method, path, request_id, exc_info=exc
        )
        status, detail = 500, "internal error; quote the request_id when reporting it"
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": path,
        "request_id": request_id,
        **(extra or {}),
    }
    return status, body, headers


def _problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, body, headers = problem_for(
        exc, request.method, request.url.path, request_id_of(request.scope)
    )
    if is_console(request.url.path) and wants_html(request.scope):
        return console_error_page(status, body, headers)  # the same problem, as a web page
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


exception_handlers: dict[int | type[Exception], Any] = {
    kind: _problem_response
    for kind in (
        OptimizerError,
        HTTPException,
        OperationalError,
        InterfaceError,
        DataError,
        Exception,
    )
}
