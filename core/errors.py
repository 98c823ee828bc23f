"""The one exception root of the optimizer and its few subclasses.

Every error the optimizer raises on purpose derives from :class:`OptimizerError`; one place maps
them to HTTP statuses (``api.rest.errors``), one to gRPC status codes.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "DependencyCycleError",
    "NotFoundError",
    "OptimizerError",
    "OverloadedError",
    "PermissionDeniedError",
    "ServiceStartError",
    "StorageUnavailableError",
    "ValidationError",
]


class OptimizerError(Exception):
    """Root of every error the optimizer raises on purpose."""


class ConfigurationError(OptimizerError):
    """A setting failed validation; the message names the key, the value and the rule."""


class ValidationError(OptimizerError):
    """Input from a user or an application was rejected; the message says why."""


class NotFoundError(OptimizerError):
    """A requested resource does not exist."""


class AuthenticationError(OptimizerError):
    """Missing, unknown, revoked, expired or forged credentials (HTTP 401, ``UNAUTHENTICATED``)."""


class PermissionDeniedError(OptimizerError):
    """The caller is known but its roles do not allow this (HTTP 403, ``PERMISSION_DENIED``)."""


class ConflictError(OptimizerError):
    """The request conflicts with the resource's state, e.g. a name taken (HTTP 409)."""


class OverloadedError(OptimizerError):
    """Input was refused for now (rate limit, backpressure, full buffer); retry later.

    Maps to HTTP 429 with ``Retry-After`` and gRPC ``RESOURCE_EXHAUSTED``. Nothing of the
    refused request was accepted, so the client should resend all of it.

    Attributes:
        retry_after: Seconds the client should wait before retrying (at least 1).
        cause: ``"rate_limited"``, ``"backpressure"`` or ``"buffer_full"``.
    """

    def __init__(self, message: str, *, retry_after: float, cause: str) -> None:
        self.retry_after = max(1.0, float(retry_after))
        self.cause = cause
        super().__init__(message)


class StorageUnavailableError(OptimizerError):
    """PostgreSQL/SQLite, Redis or Kafka could not be reached."""


class DependencyCycleError(OptimizerError):
    """The services' dependencies form a cycle; the message names it."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("service dependency cycle: " + " -> ".join(cycle))


class ServiceStartError(OptimizerError):
    """A service failed to start; the orchestrator stops what started and exits non-zero."""

    def __init__(self, service: str, reason: str) -> None:
        self.service = service
        self.reason = reason
        super().__init__(f"service {service!r} failed to start: {reason}")
