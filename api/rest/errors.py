"""The one place that maps errors to HTTP responses.

Optimizer errors by kind; a database that cannot be reached (SQLAlchemy's operational and
interface errors, wherever they surface) is a 503 whose body never repeats connection details.
"""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from core.errors import NotFoundError, OptimizerError, StorageUnavailableError, ValidationError

_log = logging.getLogger(__name__)

__all__ = ["exception_handlers", "status_of"]

_STATUS: tuple[tuple[type[OptimizerError], int], ...] = (
    (ValidationError, HTTP_400_BAD_REQUEST),
    (NotFoundError, HTTP_404_NOT_FOUND),
    (StorageUnavailableError, HTTP_503_SERVICE_UNAVAILABLE),
)


def status_of(exc: OptimizerError) -> int:
    """The HTTP status of an optimizer error."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return HTTP_500_INTERNAL_SERVER_ERROR


def _handle(request: Request, exc: OptimizerError) -> Response:  # type: ignore[type-arg]
    status = status_of(exc)
    return Response({"status_code": status, "detail": str(exc)}, status_code=status)


def _database_down(request: Request, exc: DBAPIError) -> Response:  # type: ignore[type-arg]
    _log.warning("database unavailable: %s", exc.__class__.__name__)
    body = {"status_code": HTTP_503_SERVICE_UNAVAILABLE, "detail": "database unavailable"}
    return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)


exception_handlers = {
    OptimizerError: _handle,
    OperationalError: _database_down,
    InterfaceError: _database_down,
}
