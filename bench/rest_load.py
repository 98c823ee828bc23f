"""REST load: ``GET /api/v1/config/{app}`` and telemetry ingest against a real Hypercorn server.

The server runs in its own process (``create_app`` on Hypercorn, as the orchestrator serves it)
over SQLite or PostgreSQL, the in-process cache or Redis, and the embedded tansu broker for
telemetry. Load comes from separate client processes, each an asyncio httpx loop with a fixed
number of connections in flight, for a fixed time. Prints requests/s, p50 and p99 per scenario.

    .venv/bin/python -m bench.rest_load                       # SQLite, in-process cache
    .venv/bin/python -m bench.rest_load --clients 2 --concurrency 32 --seconds 10 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1/test --redis-url redis://127.0.0.1/15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from core.settings import ApiSettings, KafkaSettings, Settings, StorageSettings

KEY = "bench-admin-key-0123456789abcdef"
EVENTS_PER_BATCH = 100


def _settings(args: argparse.Namespace, port: int, bootstrap: str) -> Settings:
    database = args.database_url or f"sqlite:///{Path(args.data_dir) / 'bench.sqlite3'}"
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, telemetry_topic=f"bench.{uuid.uuid4().hex[:6]}"
        ),
        storage=StorageSettings(
            database_url=database, redis_url=args.redis_url, data_dir=args.data_dir
        ),
        api=ApiSettings(
            host="127.0.0.1",
            port=port,
            bootstrap_admin_key=KEY,
            rate_limit_per_s=1e9,
            rate_limit_burst=1_000_000_000,
            rate_limit_prefix=f"llmopt:bench:{uuid.uuid4().hex[:8]}",
        ),
        log_level="WARNING",
    )


def serve(settings: Settings, ready: Any) -> None:
    """The server process: migrate, seed one config, serve until terminated."""
    import logging

    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from api.rest.app import create_app
    from core.app_config import TaskConfig
    from sinks.config_manager import ConfigManager
    from storage.database import create_db_engine, migrate
    from storage.kafka import ensure_topics

    logging.basicConfig(level=logging.WARNING)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    engine = create_db_engine(settings.storage.resolved_database_url)
    migrate(engine)
    ConfigManager(engine).update(
        "bench", {"classify": TaskConfig(model="gpt-4o-mini")}, author="bench", reason="seed"
    )
    engine.dispose()
    ensure_topics(settings.kafka.bootstrap_servers, {settings.kafka.telemetry_topic: 3})
    config = Config()
    config.bind = [f"127.0.0.1:{settings.api.port}"]
    config.accesslog = None
    ready.set()
    asyncio.run(hypercorn_serve(create_app(settings), config))  # type: ignore[arg-type]


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


async def _load(
    base: str, scenario: str, concurrency: int, seconds: float, client: int
) -> list[float]:
    latencies: list[float] = []
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as http:
        end = time.perf_counter() + seconds
        failures = 0

        async def worker(w: int) -> None:
            nonlocal failures
            n = 0
            while time.perf_counter() < end:
                started = time.perf_counter()
                if scenario == "config":
                    response = await http.get("/api/v1/config/bench")
                else:
                    response = await http.post(
                        "/api/v1/telemetry", content=_batch(client * 1000 + w, n)
                    )
                n += 1
                if response.status_code >= 300:
                    failures += 1
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    if failures:
        print(f"  client {client}: {failures} failed requests", file=sys.stderr)
    return latencies


def _client(
    base: str, scenario: str, concurrency: int, seconds: float, client: int, out: Any
) -> None:
    out.put(asyncio.run(_load(base, scenario, concurrency, seconds, client)))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_scenario(base: str, scenario: str, args: argparse.Namespace) -> dict[str, float]:
    """Warm up, then load from ``args.clients`` processes; requests/s and latency quantiles."""
    asyncio.run(_load(base, scenario, 4, 1.0, 99))  # warm-up: caches, connections, JIT-less paths
    out: Any = mp.Queue()
    procs = [
        mp.Process(target=_client, args=(base, scenario, args.concurrency, args.seconds, c, out))
        for c in range(args.clients)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    latencies: list[float] = []
    for _ in procs:
        latencies += out.get()
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join()
    rps = len(latencies) / min(elapsed, args.seconds + 0.5)
    return {
        "requests": len(latencies),
        "rps": rps,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
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
    args = parser.parse_args(argv)
    from storage.kafka import EmbeddedBroker
    from tests.unit.api.rest_support import free_port

    tmp = tempfile.TemporaryDirectory()
    args.data_dir = args.data_dir or tmp.name
    broker = EmbeddedBroker()
    broker.start()
    port = free_port()
    settings = _settings(args, port, broker.bootstrap)
    ready = mp.Event()
    server = mp.Process(target=serve, args=(settings, ready), daemon=True)
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
            f"server: 1 Hypercorn process, database {database}, "
            f"cache {'redis' if args.redis_url else 'in-process'}; load: {args.clients} client "
            f"process(es) x {args.concurrency} in flight, {args.seconds:g}s each"
        )
        for scenario, label in (
            ("config", "GET /api/v1/config/{app}"),
            ("telemetry", f"POST /api/v1/telemetry ({EVENTS_PER_BATCH} events)"),
        ):
            r = run_scenario(base, scenario, args)
            extra = (
                f"  ({r['rps'] * EVENTS_PER_BATCH:,.0f} events/s)"
                if scenario == "telemetry"
                else ""
            )
            print(
                f"{label:<42} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                f"p99 {r['p99_ms']:6.2f} ms  ({r['requests']:,} requests){extra}"
            )
    finally:
        server.terminate()
        server.join(10)
        broker.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
