"""The one place that maps errors to gRPC status codes, with rich error details.

Optimizer errors map by kind (:data:`STATUS`); a database that cannot be reached is
``UNAVAILABLE``, a value the database refuses ``INVALID_ARGUMENT``, anything else a logged
``INTERNAL`` that names the request id. ``INVALID_ARGUMENT`` carries a ``BadRequest`` with the
offending field and ``RESOURCE_EXHAUSTED`` a ``RetryInfo`` (plus ``retry-after`` metadata), packed
in the standard ``grpc-status-details-bin`` trailer. grpcio-status and googleapis-common-protos
are not installed, so the details are encoded with :mod:`proto.llmopt.v1.errors_pb2`, whose
messages are wire-compatible with ``google.rpc.Status``/``BadRequest``/``RetryInfo``.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

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
from proto.llmopt.v1 import errors_pb2

__all__ = [
    "DETAILS_KEY",
    "STATUS",
    "FieldError",
    "abort_with",
    "decode_details",
    "status_of",
    "translate",
]

_log = logging.getLogger(__name__)

DETAILS_KEY = "grpc-status-details-bin"
_BAD_REQUEST_URL = "type.googleapis.com/google.rpc.BadRequest"
_RETRY_INFO_URL = "type.googleapis.com/google.rpc.RetryInfo"
# "limit must be between ...", "app must not be empty": the field a service-layer message names.
_FIELD = re.compile(r"^([a-z_][a-z0-9_.]*) (?:must|is|exceeds)\b")

STATUS: tuple[tuple[type[OptimizerError], grpc.StatusCode], ...] = (
    (ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (AuthenticationError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (ConflictError, grpc.StatusCode.ALREADY_EXISTS),
    (OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ConfigurationError, grpc.StatusCode.UNAVAILABLE),
    (StorageUnavailableError, grpc.StatusCode.UNAVAILABLE),
)


class FieldError(ValidationError):
    """A request field that failed validation: ``INVALID_ARGUMENT`` naming ``field``."""

    def __init__(self, field: str, description: str) -> None:
        self.field = field
        self.description = description
        super().__init__(f"{field}: {description}")


def status_of(exc: OptimizerError) -> grpc.StatusCode:
    """The gRPC status code of an optimizer error."""
    for kind, code in STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _packed(type_url: str, message: Any) -> any_pb2.Any:
    return any_pb2.Any(type_url=type_url, value=message.SerializeToString())


def _field_of(exc: ValidationError) -> tuple[str, str]:
    if isinstance(exc, FieldError):
        return exc.field, exc.description
    text = str(exc)
    found = _FIELD.match(text)
    return (found.group(1) if found else ""), text


def translate(exc: BaseException) -> tuple[grpc.StatusCode, str, tuple[tuple[str, Any], ...]]:
    """Status code, message and trailing metadata (with rich details) for ``exc``."""
    details: list[any_pb2.Any] = []
    metadata: list[tuple[str, Any]] = []
    if isinstance(exc, OptimizerError):
        code, message = status_of(exc), str(exc)
        if isinstance(exc, ValidationError):
            field, description = _field_of(exc)
            violation = errors_pb2.BadRequest.FieldViolation(field=field, description=description)
            details.append(
                _packed(_BAD_REQUEST_URL, errors_pb2.BadRequest(field_violations=[violation]))
            )
        elif isinstance(exc, OverloadedError):
            seconds = max(1, math.ceil(exc.retry_after))
            delay = duration_pb2.Duration(seconds=seconds)
            details.append(_packed(_RETRY_INFO_URL, errors_pb2.RetryInfo(retry_delay=delay)))
            metadata.append(("retry-after", str(seconds)))
        if code == grpc.StatusCode.UNAVAILABLE:
            _log.warning("%s: %s", type(exc).__name__, exc)
    elif isinstance(exc, OperationalError | InterfaceError):
        _log.warning("database unavailable: %s", exc.__class__.__name__)
        code, message = grpc.StatusCode.UNAVAILABLE, "database unavailable"
    elif isinstance(exc, DataError):
        code, message = grpc.StatusCode.INVALID_ARGUMENT, "a value cannot be stored"
    else:
        code, message = grpc.StatusCode.INTERNAL, "internal error"
    status = errors_pb2.RpcStatus(code=code.value[0], message=message, details=details)
    metadata.append((DETAILS_KEY, status.SerializeToString()))
    return code, message, tuple(metadata)


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    """End the call with the status of ``exc`` (raises ``grpc.aio.AbortError``)."""
    code, message, metadata = translate(exc)
    await context.abort(code, message, trailing_metadata=metadata)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def decode_details(trailing_metadata: Any) -> errors_pb2.RpcStatus | None:
    """The rich status a failed call carried (for clients and tests)."""
    for key, value in trailing_metadata or ():
        if key == DETAILS_KEY:
            return errors_pb2.RpcStatus.FromString(value)
    return None
