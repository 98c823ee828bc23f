"""``[orchestrator]``: the service manager, logging, traces and the processor's supervision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core.settings.rules import BrokerList, Int, OneOf, StrList, Url
from core.settings.spec import setting

__all__ = ["OrchestratorSettings"]


@dataclass(frozen=True, slots=True)
class OrchestratorSettings:
    """The service manager."""

    health_interval: timedelta = setting(timedelta(seconds=30), "between two health checks")
    shutdown_timeout: timedelta = setting(
        timedelta(seconds=30), "longest wait for a service to stop"
    )
    start_timeout: timedelta = setting(timedelta(seconds=60), "longest wait for a service to start")
    metrics_port: int = setting(9090, "Prometheus `/metrics` port", Int(0, 65535), restart=True)
    failure_threshold: int = setting(
        3, "consecutive failed health checks before a restart", Int(1, 100)
    )
    max_restarts: int = setting(
        3, "restarts of one service before it is marked Failed", Int(0, 100)
    )
    health_timeout: timedelta = setting(timedelta(seconds=10), "longest wait for one health check")
    log_format: str = setting(
        "auto",
        "`json`, `console` or `auto` (json in production, console otherwise)",
        OneOf(("auto", "json", "console")),
    )
    otlp_endpoint: str = setting(
        "",
        "OTLP/HTTP traces endpoint, e.g. `http://otel:4318`",
        Url(("http", "https"), "an http(s):// URL (empty: no traces)"),
        shown="empty: no traces",
        restart=True,
    )
    pipeline_metrics_interval: timedelta = setting(
        timedelta(seconds=15), "how often database and Kafka pipeline metrics are sampled"
    )
    supervise_processor: bool = setting(
        True,
        "`false`: the Bytewax processes run elsewhere (Compose, Kubernetes)",
        restart=True,
    )
    bytewax_api_port: int = setting(
        0,
        "first Bytewax metrics port (one per process); `0`: free ports",
        Int(0, 65535),
    )
    processor_endpoints: tuple[str, ...] = setting(
        (),
        "`host:port` of each Bytewax process's metrics API when the processes run elsewhere",
        StrList("a list of host:port", BrokerList().accepts),
    )
