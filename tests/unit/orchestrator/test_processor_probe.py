"""The processor's health reads its processes' metrics: alive, and waiting for the database."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from core.settings import Settings
from orchestrator.service import HealthStatus
from orchestrator.services.processor import ProcessorService
from orchestrator.services.processor_probe import probe_endpoints, waiting_sinks
from storage.kafka import free_port


@pytest.fixture
def process_metrics() -> Iterator[tuple[str, Gauge]]:
    """A real ``/metrics`` server like a Bytewax process's, with the processor's gauge."""
    registry = CollectorRegistry()
    gauge = Gauge("llmopt_processor_waiting_for_database", "waiting", ["sink"], registry=registry)
    gauge.labels("windows").set(0)
    server, thread = start_http_server(0, "127.0.0.1", registry)
    try:
        yield f"127.0.0.1:{server.server_port}", gauge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _external(endpoint: str) -> ProcessorService:
    base = Settings()
    settings = base.with_overrides(
        orchestrator=dataclasses.replace(
            base.orchestrator, supervise_processor=False, processor_endpoints=(endpoint,)
        )
    )
    return ProcessorService(settings, {})


def test_a_process_whose_sinks_wait_for_the_database_is_degraded_with_the_sinks_named(
    process_metrics: tuple[str, Gauge],
) -> None:
    endpoint, gauge = process_metrics
    service = _external(endpoint)
    healthy = asyncio.run(service.health_check())
    assert healthy.status is HealthStatus.HEALTHY
    assert healthy.checks[f"metrics.{endpoint}"] == "ok"

    gauge.labels("windows").set(1)
    gauge.labels("actuator").set(1)
    waiting = asyncio.run(service.health_check())
    assert waiting.status is HealthStatus.DEGRADED
    assert waiting.detail == f"{endpoint}: waiting for the database (actuator, windows)"

    gauge.labels("windows").set(0)
    gauge.labels("actuator").set(0)
    assert asyncio.run(service.health_check()).status is HealthStatus.HEALTHY


def test_probe_results_and_the_gauge_parser() -> None:
    closed = f"127.0.0.1:{free_port()}"
    assert asyncio.run(probe_endpoints([closed], wait_s=2)) == {closed: "ConnectError"}
    text = (
        "# TYPE llmopt_processor_waiting_for_database gauge\n"
        'llmopt_processor_waiting_for_database{sink="strays"} 1.0\n'
        'llmopt_processor_waiting_for_database{sink="windows"} 0.0\n'
    )
    assert waiting_sinks(text) == ["strays"]
    assert waiting_sinks("not { the text format") == []
