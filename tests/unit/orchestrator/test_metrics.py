from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY, generate_latest

from orchestrator import HealthStatus, create_registry, serve_metrics

from .fakes import FakeClock, FakeService, make_manager


def fetch(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def test_metrics_are_served_over_http_and_follow_the_manager() -> None:
    journal: list[str] = []
    clock = FakeClock(1000.0)
    storage = FakeService("storage", journal)
    api = FakeService("api", journal, ("storage",))
    manager = make_manager([storage, api], clock=clock)
    registry = create_registry(manager)

    async def scenario() -> tuple[str, str, str, str]:
        await manager.start_all()
        clock.now = 1012.5
        storage.status = HealthStatus.DEGRADED
        await manager.check_health_once()
        server = await serve_metrics(registry, "127.0.0.1", 0)
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        try:
            status, content_type, first = await asyncio.to_thread(fetch, url)
            assert status == 200
            storage.status = HealthStatus.HEALTHY
            await manager.check_health_once()
            _, _, second = await asyncio.to_thread(fetch, url)
        finally:
            await server.close()
        return content_type, first, second, url

    content_type, first, second, url = asyncio.run(scenario())
    assert content_type.startswith("text/plain")
    lines = set(first.splitlines())
    assert 'service_status{service="storage"} 2.0' in lines
    assert 'service_status{service="api"} 1.0' in lines  # a degraded dependency is still up
    assert 'service_health{service="storage"} 0.5' in lines
    assert 'service_health{service="api"} 1.0' in lines
    assert 'service_restarts_total{service="storage"} 0.0' in lines
    assert 'service_uptime_seconds{service="api"} 12.5' in lines
    assert "# TYPE service_restarts_total counter" in lines
    assert "# TYPE service_status gauge" in lines
    second_lines = set(second.splitlines())
    assert 'service_status{service="storage"} 1.0' in second_lines
    assert 'service_health{service="storage"} 1.0' in second_lines

    with pytest.raises(urllib.error.URLError):
        fetch(url)


def test_registry_is_not_the_global_one_and_codes_cover_every_state() -> None:
    journal: list[str] = []
    manager = make_manager([FakeService("a", journal)])
    registry = create_registry(manager)
    assert registry is not REGISTRY
    assert b"service_status" not in generate_latest(REGISTRY)
    text = generate_latest(registry).decode()
    assert 'service_status{service="a"} 3.0' in text  # initializing
    assert "service_health{" not in text  # not checked yet
    assert 'service_uptime_seconds{service="a"} 0.0' in text


def test_state_codes_are_distinct_and_documented() -> None:
    from orchestrator import HEALTH_VALUES, STATE_CODES, ServiceState

    assert dict(STATE_CODES) == {
        ServiceState.STOPPED: 0,
        ServiceState.RUNNING: 1,
        ServiceState.DEGRADED: 2,
        ServiceState.INITIALIZING: 3,
        ServiceState.SHUTTING_DOWN: 4,
        ServiceState.FAILED: 5,
    }
    assert dict(HEALTH_VALUES) == {
        HealthStatus.HEALTHY: 1.0,
        HealthStatus.DEGRADED: 0.5,
        HealthStatus.UNHEALTHY: 0.0,
    }
