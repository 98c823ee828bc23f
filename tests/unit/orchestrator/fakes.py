"""In-memory services and helpers for the orchestrator tests."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from orchestrator import HealthResult, HealthStatus, ServiceBase, ServiceManager


class FakeService(ServiceBase):
    """Records every call in a shared journal; failures and health are scripted."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        depends_on: tuple[str, ...] = (),
        *,
        required: bool = True,
        start_error: Exception | None = None,
        stop_error: Exception | None = None,
        hang_start: bool = False,
        hang_stop: bool = False,
    ) -> None:
        self.name = name
        self.depends_on = depends_on
        self.required = required
        self.journal = journal
        self.start_error = start_error
        self.stop_error = stop_error
        self.hang_start = hang_start
        self.hang_stop = hang_stop
        self.status = HealthStatus.HEALTHY
        self.script: list[HealthStatus] = []  # consumed first, then `status` answers
        self.health_calls = 0

    async def start(self) -> None:
        self.journal.append(f"start:{self.name}")
        if self.hang_start:
            await asyncio.Event().wait()
        if self.start_error is not None:
            raise self.start_error

    async def stop(self) -> None:
        self.journal.append(f"stop:{self.name}")
        if self.hang_stop:
            await asyncio.Event().wait()
        if self.stop_error is not None:
            raise self.stop_error

    async def health_check(self) -> HealthResult:
        self.health_calls += 1
        status = self.script.pop(0) if self.script else self.status
        return HealthResult(status, detail=f"{self.name} is {status}")


class SleepRecorder:
    """A fake ``asyncio.sleep`` that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class FakeClock:
    """A settable monotonic clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_manager(services: list[FakeService], **overrides: Any) -> ServiceManager:
    """A manager with test-friendly timeouts; ``overrides`` replace constructor arguments."""
    kwargs: dict[str, Any] = {
        "health_interval": timedelta(seconds=30),
        "shutdown_timeout": timedelta(seconds=1),
        "start_timeout": timedelta(seconds=1),
        "sleep": SleepRecorder(),
    }
    kwargs.update(overrides)
    return ServiceManager(services, **kwargs)
