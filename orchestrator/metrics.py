"""Prometheus metrics of the orchestrator, read from the service manager at scrape time.

Metrics (label ``service``):

- ``service_status``: the state as a number, see :data:`STATE_CODES`
  (stopped 0, running 1, degraded 2, initializing 3, shutting_down 4, failed 5).
- ``service_health``: the last health check, 1 healthy, 0.5 degraded, 0 unhealthy; absent
  until the service has been checked once.
- ``service_restarts_total``: restarts done by the health monitor (a counter).
- ``service_uptime_seconds``: seconds since the service last started; 0 while it is not up.
- ``request_duration_seconds`` (histogram, labels ``service`` and ``operation``): how long each
  call of the orchestrator into a service took (start, stop, health_check, recover, reload).

With a :class:`~orchestrator.pipeline_metrics.PipelineCollector` the registry also carries the
pipeline's metrics (``llmopt_pipeline_*``, ``llmopt_canary_*``, ``llmopt_budget_usd``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator.service import HealthResult, HealthStatus, ServiceState

__all__ = [
    "HEALTH_VALUES",
    "REQUEST_BUCKETS",
    "STATE_CODES",
    "ManagerCollector",
    "ManagerView",
    "MetricsServer",
    "ObservableManager",
    "create_registry",
    "serve_metrics",
]

#: ``service_status`` value of each state; running is 1 so that ``service_status != 1`` alerts.
STATE_CODES: Mapping[ServiceState, int] = MappingProxyType(
    {
        ServiceState.STOPPED: 0,
        ServiceState.RUNNING: 1,
        ServiceState.DEGRADED: 2,
        ServiceState.INITIALIZING: 3,
        ServiceState.SHUTTING_DOWN: 4,
        ServiceState.FAILED: 5,
    }
)

#: ``service_health`` value of each health status.
HEALTH_VALUES: Mapping[HealthStatus, float] = MappingProxyType(
    {HealthStatus.HEALTHY: 1.0, HealthStatus.DEGRADED: 0.5, HealthStatus.UNHEALTHY: 0.0}
)


class ManagerView(Protocol):
    """What the collector reads from the service manager."""

    def states(self) -> Mapping[str, ServiceState]:
        """Each service's state."""
        ...

    def health(self) -> Mapping[str, HealthResult]:
        """Each service's last health result."""
        ...

    def restarts(self) -> Mapping[str, int]:
        """Each service's restart count."""
        ...

    def uptime_seconds(self, name: str) -> float:
        """One service's uptime."""
        ...


#: Buckets of ``request_duration_seconds``: 1 ms to 2 min (a start may take a minute).
REQUEST_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ObservableManager(ManagerView, Protocol):
    """A manager that reports how long its calls into services take."""

    def add_duration_observer(self, observer: Callable[[str, str, float], None]) -> None:
        """Call ``observer(service, operation, seconds)`` after each call."""
        ...


class ManagerCollector:
    """A custom collector that reads the manager's snapshots at every scrape."""

    def __init__(self, manager: ManagerView) -> None:
        """Read from ``manager``."""
        self._manager = manager

    def collect(self) -> Iterable[Metric]:
        """Yield the four metric families for the current state of the manager."""
        states = self._manager.states()
        health = self._manager.health()
        restarts = self._manager.restarts()
        status = GaugeMetricFamily(
            "service_status",
            "Service state: 0 stopped, 1 running, 2 degraded, 3 initializing, "
            "4 shutting_down, 5 failed",
            labels=["service"],
        )
        healthy = GaugeMetricFamily(
            "service_health",
            "Last health check: 1 healthy, 0.5 degraded, 0 unhealthy",
            labels=["service"],
        )
        restarted = CounterMetricFamily(
            "service_restarts", "Restarts done by the health monitor", labels=["service"]
        )
        uptime = GaugeMetricFamily(
            "service_uptime_seconds", "Seconds since the service last started", labels=["service"]
        )
        for name, state in states.items():
            status.add_metric([name], STATE_CODES[state])
            if name in health:
                healthy.add_metric([name], HEALTH_VALUES[health[name].status])
            restarted.add_metric([name], restarts.get(name, 0))
            uptime.add_metric([name], self._manager.uptime_seconds(name))
        return [status, healthy, restarted, uptime]

    def describe(self) -> Iterable[Metric]:
        """Name the metric families without reading the manager (used at registration)."""
        return [
            GaugeMetricFamily("service_status", ""),
            GaugeMetricFamily("service_health", ""),
            CounterMetricFamily("service_restarts", ""),
            GaugeMetricFamily("service_uptime_seconds", ""),
        ]


def create_registry(manager: ManagerView, *, extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """Return a new registry (not the global one) exposing ``manager``'s metrics.

    Args:
        manager: Usually the :class:`~orchestrator.manager.ServiceManager`; when it takes
            duration observers, ``request_duration_seconds`` is recorded too.
        extra: More collectors, e.g. the pipeline's.

    Returns:
        A registry with a :class:`ManagerCollector` (and ``extra``) registered.
    """
    registry = CollectorRegistry()
    registry.register(ManagerCollector(manager))
    histogram = Histogram(
        "request_duration_seconds",
        "Duration of the orchestrator's calls into each service",
        ["service", "operation"],
        buckets=REQUEST_BUCKETS,
        registry=registry,
    )
    observe = getattr(manager, "add_duration_observer", None)
    if observe is not None:
        observe(lambda service, op, seconds: histogram.labels(service, op).observe(seconds))
    for collector in extra:
        registry.register(collector)
    return registry


@dataclass
class MetricsServer:
    """A running metrics HTTP server (prometheus_client's, in a daemon thread).

    Attributes:
        host: The address it listens on.
        port: The bound port (the real one when port 0 was asked for).
    """

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    async def close(self) -> None:
        """Stop serving and release the port; waits for the serving thread to end."""
        await asyncio.to_thread(self._server.shutdown)
        self._server.server_close()
        await asyncio.to_thread(self._thread.join, 5.0)


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve ``registry`` in the Prometheus text format on ``http://host:port/metrics``.

    Args:
        registry: What to expose.
        host: Address to bind, e.g. ``"0.0.0.0"`` or ``"127.0.0.1"``.
        port: Port to bind; 0 picks a free one (read it from the result's ``port``).

    Returns:
        The running server; ``await server.close()`` stops it.
    """
    server, thread = await asyncio.to_thread(start_http_server, port, host, registry)
    return MetricsServer(host=host, port=server.server_port, _server=server, _thread=thread)
