"""Probing the Bytewax processes' own metrics API: alive, and whether a sink waits for the database.

Each process serves ``/metrics`` (Bytewax's dataflow API, ``BYTEWAX_DATAFLOW_API_ENABLED``),
which includes the processor's own gauges; ``llmopt_processor_waiting_for_database{sink}`` is 1
while that sink retries a write because the database is away (``sinks.database_wait``).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["OK", "WAITING_FOR_DATABASE", "probe_endpoints", "waiting_sinks"]

OK = "ok"
#: The start of a probe result that says the process is alive but waits for its database.
WAITING_FOR_DATABASE = "waiting for the database"
_GAUGE = "llmopt_processor_waiting_for_database"


def waiting_sinks(metrics_text: str) -> list[str]:
    """The sinks whose waiting-for-database gauge is set in a ``/metrics`` answer."""
    out: list[str] = []
    try:
        for family in text_string_to_metric_families(metrics_text):
            if family.name != _GAUGE:
                continue
            out += [s.labels.get("sink", "?") for s in family.samples if s.value >= 1]
    except ValueError:  # not the Prometheus text format: judged alive by its status alone
        return []
    return sorted(out)


async def probe_endpoints(endpoints: Sequence[str], wait_s: float = 3.0) -> dict[str, str]:
    """GET ``http://ENDPOINT/metrics`` of each process: its state in one short string.

    ``ok``; ``waiting for the database (SINKS)`` (alive, its writes retrying); or why it did
    not answer (an HTTP status or the error's name).
    """
    checks: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=wait_s) as client:
        for endpoint in endpoints:
            try:
                response = await client.get(f"http://{endpoint}/metrics")
            except httpx.HTTPError as exc:
                checks[endpoint] = type(exc).__name__
                continue
            if response.status_code != 200:
                checks[endpoint] = str(response.status_code)
            elif sinks := waiting_sinks(response.text):
                checks[endpoint] = f"{WAITING_FOR_DATABASE} ({', '.join(sinks)})"
            else:
                checks[endpoint] = OK
    return checks
