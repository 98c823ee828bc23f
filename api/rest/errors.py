"""The one place that maps optimizer errors to HTTP responses."""

from __future__ import annotations

from litestar import Request, Response
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from core.errors import NotFoundError, OptimizerError, StorageUnavailableError, ValidationError

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


exception_handlers = {OptimizerError: _handle}
