"""Prometheus metrics of several server processes, summed: prometheus_client's multiprocess mode.

The REST workers and the gRPC worker processes each record their metrics in files of one
directory their parent made; whoever exports them (a REST worker's ``/metrics``, the
orchestrator's ``orchestrator.metrics_port`` for gRPC) reads that directory and sums them.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, multiprocess, values

__all__ = ["record_in"]


def record_in(directory: str) -> CollectorRegistry:
    """Record this process's metrics in ``directory``; a registry of every process's sums.

    prometheus_client picks its multiprocess values from ``PROMETHEUS_MULTIPROC_DIR`` when it
    is imported, which a worker has done already; metrics created after this call (a worker
    creates its metrics with its app or server) write to files of ``directory``.
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry
