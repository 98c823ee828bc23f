"""REST load: ``GET /api/v1/config/{app}`` and telemetry ingest against the real REST server.

The server runs in its own process as the orchestrator runs it (``api.rest.server.serve``:
granian with ``--server-workers`` worker processes on one socket) over SQLite or PostgreSQL,
the in-process cache or Redis, and the embedded tansu broker for telemetry. Load comes from
``--clients`` separate processes, each an asyncio loop over ``--concurrency`` keep-alive
HTTP/1.1 connections written and parsed by hand (an httpx loop costs more CPU per request than
the server does), for a fixed time. Prints requests/s, p50 and p99 per scenario, and the CPU the
server and the clients used: server CPU per request is the figure that does not depend on how
busy the shared machine is, and a client near one full core would mean the client is the limit.

    .venv/bin/python -m bench.rest_load --server-workers 1    # SQLite, in-process cache
    .venv/bin/python -m bench.rest_load --clients 2 --seconds 5 --server-workers 2 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1/llmopt_bench \\
        --redis-url redis://127.0.0.1/15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from core.settings import (
    ApiRateLimitSettings,
    ApiSettings,
    CollectorSettings,
    KafkaSettings,
    Settings,
    StorageSettings,
)

KEY = "bench-admin-key-0123456789abcdef"
EVENTS_PER_BATCH = 100


def _settings(args: argparse.Namespace, port: int, bootstrap: str) -> Settings:
    database = args.database_url or f"sqlite:///{Path(args.data_dir) / 'bench.sqlite3'}"
    # The collector's per-source and global event limits would cap ingest, not the server
    # (as in bench/grpc_load.py); the API rate limiter stays on, with a limit never reached.
    collector = dataclasses.replace(
        CollectorSettings(), source_rate=0.0, global_rate=0.0, queue_high_watermark=1_000_000
    )
    return Settings(
        collector=collector,
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, telemetry_topic=f"bench.{uuid.uuid4().hex[:6]}"
        ),
        storage=StorageSettings(
            database_url=database, redis_url=args.redis_url, data_dir=args.data_dir
        ),
        api=ApiSettings(
            host="127.0.0.1",
            port=port,
            workers=args.server_workers,
            bootstrap_admin_key=KEY,
            rate_limit=ApiRateLimitSettings(
                per_s=1e9,
                burst=1_000_000_000,
                prefix=f"llmopt:bench:{uuid.uuid4().hex[:8]}",
            ),
        ),
        log_level="WARNING",
    )


def prepare(settings: Settings) -> None:
    """Migrate the database, seed one config, create the telemetry topic."""
    from core.app_config import TaskConfig
    from rollout.config_manager import ConfigManager
    from storage.database import create_db_engine, migrate
    from storage.kafka import ensure_topics

    engine = create_db_engine(settings.storage.resolved_database_url)
    migrate(engine)
    ConfigManager(engine).update(
        "bench", {"classify": TaskConfig(model="gpt-4o-mini")}, author="bench", reason="seed"
    )
    engine.dispose()
    ensure_topics(settings.kafka.bootstrap_servers, {settings.kafka.telemetry_topic: 3})


def quiet(settings: Settings) -> None:
    """A server worker's setup: warnings only (no access log, no per-request debug)."""
    import logging

    import structlog

    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def traced(settings: Settings) -> None:
    """:func:`quiet`, plus a recording tracer provider (as with ``orchestrator.otlp_endpoint``).

    Its spans go to a batch processor whose exporter drops them: the server pays for making
    and ending each span, not for a receiver's network.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    quiet(settings)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    trace.set_tracer_provider(provider)


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (granian's main process and its workers)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += _process_tree(int(child))
    return found


def _batch(client: int, n: int) -> bytes:
    now = int(time.time() * 1000)
    return json.dumps(
        [
            {
                "event_id": f"{client}-{n}-{i}",
                "timestamp": now,
                "app": "bench",
                "task": "classify",
                "model": "gpt-4o-mini",
                "latency_ms": 100 + i,
                "input_tokens": 500,
                "output_tokens": 20,
            }
            for i in range(EVENTS_PER_BATCH)
        ]
    ).encode()


def _request(scenario: str, host: str, body: bytes = b"") -> bytes:
    head = f"Host: {host}\r\nx-api-key: {KEY}\r\naccept-encoding: gzip, br\r\n"
    if scenario == "config":
        return f"GET /api/v1/config/bench HTTP/1.1\r\n{head}\r\n".encode()
    return (
        f"POST /api/v1/telemetry HTTP/1.1\r\n{head}content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _response(reader: asyncio.StreamReader) -> int:
    """Read one response (``content-length`` framed, as the app answers); its status."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    at = head.find(b"content-length:")
    if at < 0:
        raise RuntimeError(f"response without content-length: {head[:200]!r}")
    length = int(head[at + 15 : head.index(b"\r\n", at)])
    await reader.readexactly(length)
    return int(head[9:12])


async def _load(
    base: str, scenario: str, concurrency: int, seconds: float, client: int
) -> tuple[list[float], int, float]:
    """``concurrency`` keep-alive connections, one request in flight on each."""
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    failures = 0
    cpu = time.process_time()
    end = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(host, int(port))
        n = 0
        get = _request("config", f"{host}:{port}")
        try:
            while time.perf_counter() < end:
                request = (
                    get
                    if scenario == "config"
                    else _request(scenario, f"{host}:{port}", _batch(client * 1000 + w, n))
                )
                started = time.perf_counter()
                n += 1
                try:
                    writer.write(request)
                    status = await _response(reader)
                except (ConnectionError, asyncio.IncompleteReadError):
                    failures += 1  # the server closed the connection: count it, reconnect
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                    continue
                latencies.append(time.perf_counter() - started)
                if status >= 300:
                    failures += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    if failures:
        print(f"  client {client}: {failures} failed requests", file=sys.stderr)
    return latencies, failures, time.process_time() - cpu


def _client(
    base: str, scenario: str, concurrency: int, seconds: float, client: int, out: Any
) -> None:
    out.put(asyncio.run(_load(base, scenario, concurrency, seconds, client)))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_scenario(
    base: str, scenario: str, args: argparse.Namespace, servers: list[int]
) -> dict[str, float]:
    """Warm up, then load from ``args.clients`` processes; requests/s and latency quantiles."""
    asyncio.run(_load(base, scenario, 4, 1.0, 99))  # warm-up: caches, connections, JIT-less paths
    out: Any = mp.Queue()
    server_cpu = sum(_cpu_seconds(pid) for pid in servers)
    procs = [
        mp.Process(target=_client, args=(base, scenario, args.concurrency, args.seconds, c, out))
        for c in range(args.clients)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    latencies: list[float] = []
    failures = 0
    client_cpu = 0.0
    for _ in procs:
        found, failed, cpu = out.get()
        latencies += found
        failures += failed
        client_cpu += cpu
    elapsed = time.perf_counter() - started
    server_cpu = sum(_cpu_seconds(pid) for pid in servers) - server_cpu
    for p in procs:
        p.join()
    rps = len(latencies) / min(elapsed, args.seconds + 0.5)
    return {
        "requests": len(latencies),
        "failures": failures,
        "rps": rps,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "server_us": server_cpu / max(1, len(latencies)) * 1e6,
        "server_cores": server_cpu / args.seconds,
        "client_cores": client_cpu / args.seconds,
    }


def main(argv: list[str] | None = None) -> None:
    """Start the broker and server, run both scenarios, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight per client")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--data-dir", default="")
    parser.add_argument(
        "--server-workers", type=int, default=1, help="granian worker processes (api.workers)"
    )
    parser.add_argument(
        "--tracing", action="store_true", help="a recording tracer provider in each worker"
    )
    args = parser.parse_args(argv)
    from storage.kafka import EmbeddedBroker, free_port

    tmp = tempfile.TemporaryDirectory()
    args.data_dir = args.data_dir or tmp.name
    broker = EmbeddedBroker()
    broker.start()
    port = free_port()
    settings = _settings(args, port, broker.bootstrap)
    prepare(settings)
    from api.rest.server import serve

    ready = mp.get_context("spawn").Event()
    server = mp.get_context("spawn").Process(target=serve, args=(settings, None, quiet, ready))
    server.start()
    ready.wait(60)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(base + "/health/live").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        database = settings.storage.resolved_database_url.split("@")[-1]
        print(
            f"server: granian, {args.server_workers} worker process(es)"
            f"{', tracing' if args.tracing else ''}, database {database}, "
            f"cache {'redis' if args.redis_url else 'in-process'}; load: {args.clients} client "
            f"process(es) x {args.concurrency} keep-alive connections, {args.seconds:g}s each; "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        for scenario, label in (
            ("config", "GET /api/v1/config/{app}"),
            ("telemetry", f"POST /api/v1/telemetry ({EVENTS_PER_BATCH} events)"),
        ):
            r = run_scenario(base, scenario, args, _process_tree(server.pid))
            extra = (
                f"  ({r['rps'] * EVENTS_PER_BATCH:,.0f} events/s)"
                if scenario == "telemetry"
                else ""
            )
            print(
                f"{label:<42} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                f"p99 {r['p99_ms']:6.2f} ms  ({r['requests']:,} requests, "
                f"{r['failures']:,} failed){extra}\n"
                f"{'':<42} server {r['server_us']:6.0f} us CPU/request "
                f"({r['server_cores']:.2f} cores), clients {r['client_cores']:.2f} cores"
            )
    finally:
        server.terminate()
        server.join(40)
        broker.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
