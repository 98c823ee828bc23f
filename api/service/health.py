"""Per-dependency health: what ``/health`` and the gRPC health service report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from core.errors import OptimizerError

__all__ = ["DependencyCheck", "HealthReport", "HealthService"]

Status = Literal["ok", "degraded", "down"]


@dataclass(frozen=True)
class DependencyCheck:
    """One dependency: its name, whether the service cannot work without it, and its probe."""

    name: str
    required: bool
    probe: Callable[[], Awaitable[None]]


class DependencyStatus(msgspec.Struct, frozen=True):
    """The state of one dependency."""

    status: Literal["ok", "down"]
    required: bool
    detail: str = ""


class HealthReport(msgspec.Struct, frozen=True):
    """Overall status (down when a required dependency is down) and each dependency's."""

    status: Status
    dependencies: dict[str, DependencyStatus]


class HealthService:
    """Probes every dependency concurrently, each within a timeout."""

    def __init__(self, checks: Sequence[DependencyCheck], timeout: float = 3.0) -> None:
        self._checks = list(checks)
        self._timeout = timeout

    async def _one(self, check: DependencyCheck) -> DependencyStatus:
        try:
            await asyncio.wait_for(check.probe(), self._timeout)
        except TimeoutError:
            return DependencyStatus("down", check.required, f"no answer within {self._timeout}s")
        except (OptimizerError, OSError) as exc:
            return DependencyStatus("down", check.required, str(exc))
        return DependencyStatus("ok", check.required)

    async def report(self) -> HealthReport:
        """Probe all dependencies and combine them."""
        results = await asyncio.gather(*(self._one(c) for c in self._checks))
        deps = {c.name: r for c, r in zip(self._checks, results, strict=True)}
        status: Status = "ok"
        if any(r.status == "down" and r.required for r in results):
            status = "down"
        elif any(r.status == "down" for r in results):
            status = "degraded"
        return HealthReport(status=status, dependencies=deps)
