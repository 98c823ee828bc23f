"""gRPC load: unary ``ConfigService/GetConfig`` and the ``MetricsService/RecordTelemetry`` stream.

The server runs in its own process (``api.grpc.create_server`` on ``grpc.aio``, as the
orchestrator serves it) over SQLite or PostgreSQL, the in-process cache or Redis, and the embedded
tansu broker for telemetry. Load comes from separate client processes, each a ``grpc.aio``
channel with a fixed number of calls (or streams) in flight, for a fixed time.

    .venv/bin/python -m bench.grpc_load                       # SQLite, in-process cache
    .venv/bin/python -m bench.grpc_load --clients 2 --concurrency 32 --seconds 10 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1/test --redis-url redis://127.0.0.1/15
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from bench.rest_load import KEY, _cpu_seconds, _percentile, _process_tree, _settings, prepare
from bench.rest_load import run_scenario as run_rest_scenario
from core.settings import Settings

EVENTS_PER_MESSAGE = 100


def serve(settings: Settings, ready: Any) -> None:
    """The server process (database migrated and seeded by the caller): serve until terminated."""
    import logging

    import structlog

    from api.grpc import create_server, open_resources

    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    async def main() -> None:
        async with open_resources(settings) as resources:
            server = create_server(settings, resources)
            await server.start()
            ready.set()
            await server.wait()

    asyncio.run(main())


def serve_pool(settings: Settings, ready: Any) -> None:
    """``grpc.workers`` server processes as the orchestrator's gRPC service runs them (this
    process supervises; its process tree is what the server CPU per call counts)."""
    import logging

    import structlog

    from orchestrator.services.grpc import GrpcService

    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    async def main() -> None:
        service = GrpcService(settings)
        await service.start()
        ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await service.stop()

    asyncio.run(main())


def serve_floor(port: int, ready: Any) -> None:
    """grpc.aio's own floor: ``GetConfig`` answering one prebuilt message, no interceptors.

    The same proto, server options and client as the real server, nothing of ours per call:
    what one grpc.aio process costs per unary call on this machine.
    """
    import grpc

    from proto.llmopt.v1 import config_pb2, config_pb2_grpc

    class Floor(config_pb2_grpc.ConfigServiceServicer):
        def __init__(self) -> None:
            self.answer = config_pb2.AppConfig(app="bench", version=1)

        async def GetConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
            return self.answer

    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        config_pb2_grpc.add_ConfigServiceServicer_to_server(Floor(), server)  # type: ignore[abstract]
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()

    asyncio.run(main())


def serve_sync_floor(port: int, ready: Any) -> None:
    """grpcio's synchronous server (a thread pool) answering one prebuilt message: its floor."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    from proto.llmopt.v1 import config_pb2, config_pb2_grpc

    class Floor(config_pb2_grpc.ConfigServiceServicer):
        def __init__(self) -> None:
            self.answer = config_pb2.AppConfig(app="bench", version=1)

        def GetConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
            return self.answer

    server = grpc.server(ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)])
    config_pb2_grpc.add_ConfigServiceServicer_to_server(Floor(), server)  # type: ignore[abstract]
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready.set()
    server.wait_for_termination()


def _message(client: int, n: int) -> Any:
    from google.protobuf import timestamp_pb2

    from proto.llmopt.v1 import common_pb2, metrics_pb2

    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return metrics_pb2.RecordTelemetryRequest(
        events=[
            common_pb2.TelemetryEvent(
                event_id=f"{client}-{n}-{i}",
                timestamp=stamp,
                app="bench",
                task="classify",
                model="gpt-4o-mini",
                latency_ms=100.0 + i,
                input_tokens=500,
                output_tokens=20,
            )
            for i in range(EVENTS_PER_MESSAGE)
        ]
    )


async def _load(
    target: str, scenario: str, concurrency: int, seconds: float, client: int
) -> tuple[list[float], int]:
    """Latencies of unary calls (or of stream messages) and the events accepted."""
    import grpc

    from proto.llmopt.v1 import config_pb2, config_pb2_grpc, metrics_pb2_grpc

    latencies: list[float] = []
    accepted = 0
    failures = 0
    metadata = (("x-api-key", KEY),)
    async with grpc.aio.insecure_channel(target) as channel:
        config = config_pb2_grpc.ConfigServiceStub(channel)
        metrics = metrics_pb2_grpc.MetricsServiceStub(channel)
        end = time.perf_counter() + seconds

        async def unary(w: int) -> None:
            nonlocal failures
            request = config_pb2.GetConfigRequest(app="bench")
            while time.perf_counter() < end:
                started = time.perf_counter()
                try:
                    await config.GetConfig(request, metadata=metadata)
                except grpc.RpcError:
                    failures += 1
                latencies.append(time.perf_counter() - started)

        async def stream(w: int) -> None:
            nonlocal accepted, failures
            # Pre-built messages: the client measures the server, not protobuf construction.
            messages = [_message(client * 1000 + w, n) for n in range(50)]

            async def requests() -> Any:
                n = 0
                while time.perf_counter() < end:
                    started = time.perf_counter()
                    yield messages[n % len(messages)]
                    latencies.append(time.perf_counter() - started)
                    n += 1

            try:
                answer = await metrics.RecordTelemetry(requests(), metadata=metadata)
                accepted += answer.accepted
            except grpc.RpcError as exc:
                failures += 1
                print(f"  stream failed: {exc.code()} {exc.details()}", file=sys.stderr)

        worker = unary if scenario == "config" else stream
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    if failures:
        print(f"  client {client}: {failures} failed calls", file=sys.stderr)
    return latencies, accepted


def _client(
    target: str, scenario: str, concurrency: int, seconds: float, client: int, out: Any
) -> None:
    out.put(asyncio.run(_load(target, scenario, concurrency, seconds, client)))


def run_scenario(
    target: str, scenario: str, args: argparse.Namespace, server: int
) -> dict[str, float]:
    """Warm up, then load from ``args.clients`` processes; the CPU per call of ``server`` and
    its descendants (the worker processes of ``--workers``)."""
    return _run_scenario(target, scenario, args, _process_tree(server))


def _run_scenario(
    target: str, scenario: str, args: argparse.Namespace, servers: list[int]
) -> dict[str, float]:
    asyncio.run(_load(target, scenario, 2, 1.0, 99))
    out: Any = mp.Queue()
    procs = [
        mp.Process(target=_client, args=(target, scenario, args.concurrency, args.seconds, c, out))
        for c in range(args.clients)
    ]
    server_cpu = sum(map(_cpu_seconds, servers))
    started = time.perf_counter()
    for p in procs:
        p.start()
    latencies: list[float] = []
    accepted = 0
    for _ in procs:
        found, events = out.get()
        latencies += found
        accepted += events
    elapsed = time.perf_counter() - started
    server_cpu = sum(map(_cpu_seconds, servers)) - server_cpu
    for p in procs:
        p.join()
    window = min(elapsed, args.seconds + 0.5)
    return {
        "calls": len(latencies),
        "rps": len(latencies) / window,
        "events_per_s": accepted / window,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "server_us": server_cpu / max(1, len(latencies)) * 1e6,
    }


def _start_rest(settings: Settings) -> tuple[Any, str]:
    """The REST server as ``bench.rest_load`` runs it (granian, ``api.workers`` processes)."""
    import httpx

    from api.rest.server import serve as serve_rest
    from bench.rest_load import quiet

    spawn = mp.get_context("spawn")
    ready = spawn.Event()
    server = spawn.Process(target=serve_rest, args=(settings, None, quiet, ready))
    server.start()
    ready.wait(60)
    base = f"http://127.0.0.1:{settings.api.port}"
    for _ in range(400):
        try:
            if httpx.get(base + "/health/live").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    return server, base


def main(argv: list[str] | None = None) -> None:
    """Start the broker and both servers, run the scenarios, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight per client")
    parser.add_argument("--streams", type=int, default=4, help="open streams per client")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1, help="REST/gRPC config rounds, in turn")
    parser.add_argument("--no-rest", action="store_true", help="skip the REST side by side")
    parser.add_argument("--no-telemetry", action="store_true", help="skip RecordTelemetry")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also a bare grpc.aio GetConfig server",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="REST workers (api.workers) and gRPC processes (grpc.workers); > 1 needs --redis-url",
    )
    parser.add_argument("--data-dir", default="")
    args = parser.parse_args(argv)
    args.server_workers = args.workers  # REST side by side: as many granian workers
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from storage.kafka import EmbeddedBroker, free_port

    tmp = tempfile.TemporaryDirectory()
    args.data_dir = args.data_dir or tmp.name
    broker = EmbeddedBroker()
    broker.start()
    port = free_port()
    base = _settings(args, free_port(), broker.bootstrap)
    # The collector's per-source and global event limits would cap the stream, not the server.
    unlimited = dataclasses.replace(
        base.collector, source_rate=0.0, global_rate=0.0, queue_high_watermark=1_000_000
    )
    settings = base.with_overrides(
        grpc=dataclasses.replace(base.grpc, port=port, workers=args.workers), collector=unlimited
    )
    prepare(settings)
    rest: Any = None
    if not args.no_rest:
        rest, rest_base = _start_rest(settings)
    ready = mp.Event()
    server = mp.Process(
        target=serve_pool if args.workers > 1 else serve, args=(settings, ready), daemon=False
    )
    server.start()
    ready.wait(60)
    assert server.pid is not None
    server_pid = server.pid
    target = f"127.0.0.1:{port}"
    floor: Any = None
    if args.floor:
        floor_port, floor_ready = free_port(), mp.Event()
        floor = mp.Process(target=serve_floor, args=(floor_port, floor_ready), daemon=True)
        floor.start()
        floor_ready.wait(60)
        sync_port, sync_ready = free_port(), mp.Event()
        sync_floor = mp.Process(target=serve_sync_floor, args=(sync_port, sync_ready), daemon=True)
        sync_floor.start()
        sync_ready.wait(60)
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        health.Check(health_pb2.HealthCheckRequest(), timeout=30, wait_for_ready=True)
    try:
        database = settings.storage.resolved_database_url.split("@")[-1]
        print(
            f"servers: {args.workers} grpc.aio process(es)"
            f"{'' if args.no_rest else f', {args.workers} granian worker(s) (REST)'}, "
            f"database {database}, cache {'redis' if args.redis_url else 'in-process'}; load: "
            f"{args.clients} client process(es) x {args.concurrency} in flight, "
            f"{args.seconds:g}s each; load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        for _ in range(args.rounds):
            r_rest: dict[str, float] | None = None
            if rest is not None:
                r_rest = run_rest_scenario(rest_base, "config", args, _process_tree(rest.pid))
                print(
                    f"{'REST GET /api/v1/config/{app}':<34} {r_rest['rps']:>9,.0f} calls/s  "
                    f"p50 {r_rest['p50_ms']:6.2f} ms  p99 {r_rest['p99_ms']:6.2f} ms  "
                    f"server {r_rest['server_us']:5.0f} us CPU/call"
                )
            r = run_scenario(target, "config", args, server_pid)
            print(
                f"{'gRPC unary GetConfig':<34} {r['rps']:>9,.0f} calls/s  "
                f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
                f"server {r['server_us']:5.0f} us CPU/call"
            )
            if floor is not None:
                r_floor = run_scenario(f"127.0.0.1:{floor_port}", "config", args, floor.pid)
                print(
                    f"{'bare grpc.aio GetConfig (floor)':<34} {r_floor['rps']:>9,.0f} calls/s  "
                    f"p50 {r_floor['p50_ms']:6.2f} ms  p99 {r_floor['p99_ms']:6.2f} ms  "
                    f"server {r_floor['server_us']:5.0f} us CPU/call"
                )
                r_sync = run_scenario(f"127.0.0.1:{sync_port}", "config", args, sync_floor.pid)
                print(
                    f"{'bare sync grpc GetConfig (floor)':<34} {r_sync['rps']:>9,.0f} calls/s  "
                    f"p50 {r_sync['p50_ms']:6.2f} ms  p99 {r_sync['p99_ms']:6.2f} ms  "
                    f"server {r_sync['server_us']:5.0f} us CPU/call"
                )
            if r_rest is not None:
                print(
                    f"{'  gRPC / REST':<34} {r['rps'] / r_rest['rps']:>9.2f} x rate  "
                    f"p99 {r['p99_ms'] / r_rest['p99_ms']:.2f} x  "
                    f"server CPU/call {r['server_us'] / r_rest['server_us']:.2f} x"
                )
        if not args.no_telemetry:
            stream_args = argparse.Namespace(**{**vars(args), "concurrency": args.streams})
            r = run_scenario(target, "telemetry", stream_args, server_pid)
            print(
                f"{f'RecordTelemetry, {args.streams} streams x {EVENTS_PER_MESSAGE} ev/msg':<34} "
                f"{r['rps']:>9,.0f} msgs/s   ({r['events_per_s']:,.0f} events/s accepted into "
                f"Kafka; send p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms)"
            )
    finally:
        server.terminate()
        server.join(10)
        if floor is not None:
            floor.terminate()
            floor.join(10)
            sync_floor.terminate()
            sync_floor.join(10)
        if rest is not None:
            rest.terminate()
            rest.join(40)
        broker.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
