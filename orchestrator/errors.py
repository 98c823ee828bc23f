"""Errors of the orchestrator; all derive from :class:`core.errors.OptimizerError`."""

from __future__ import annotations

from core.errors import ConfigurationError, OptimizerError

__all__ = ["IllegalTransitionError", "UnknownDependencyError"]


class IllegalTransitionError(OptimizerError):
    """A service was asked to move between two states the state machine does not link."""

    def __init__(self, service: str, current: str, target: str) -> None:
        self.service = service
        self.current = current
        self.target = target
        super().__init__(f"service {service!r}: illegal transition {current} -> {target}")


class UnknownDependencyError(ConfigurationError):
    """A service depends on a service that is not registered."""

    def __init__(self, service: str, dependency: str) -> None:
        self.service = service
        self.dependency = dependency
        super().__init__(f"service {service!r} depends on unknown service {dependency!r}")
