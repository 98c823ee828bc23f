"""The one exception root of the optimizer and its few subclasses.

Every error the optimizer raises on purpose derives from :class:`OptimizerError`; one place maps
them to HTTP statuses (``api.rest.errors``), one to gRPC status codes.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DependencyCycleError",
    "NotFoundError",
    "OptimizerError",
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
