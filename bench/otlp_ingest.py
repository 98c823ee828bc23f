"""OTLP/HTTP ingest throughput against a raw Kafka produce baseline, in the same run.

Starts the embedded tansu broker (or uses ``--bootstrap``), then measures:
  1. baseline: ``collector.producer.TelemetryProducer.send_all`` of the same events as JSON
     (idempotent, acks=all, lz4: what the collector's producer does, without HTTP or mapping);
  2. collector: a client process POSTs protobuf ``ExportTraceServiceRequest`` bodies
     (``--spans-per-request`` GenAI spans each, ``--concurrency`` requests in flight) to the
     collector's OTLP/HTTP receiver running in this process; a 200 means the spans are in
     Kafka (or spilled), so the time to the last answer is the time to get them all in.
Prints spans/s of both and their ratio.

    .venv/bin/python -m bench.otlp_ingest --spans 200000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec

from collector import Collector, TelemetryProducer
from collector.otlp_mapping import map_request
from core.settings import CollectorSettings, KafkaSettings, Settings, StorageSettings
from storage.kafka import EmbeddedBroker, ensure_topics
from tests.unit.collector.spans import chat_attrs, request, span


def _bodies(spans: int, per_request: int, offset: int) -> list[bytes]:
    out = []
    for start in range(0, spans, per_request):
        req = request(
            f"app-{(start // per_request) % 10}",
            [span(offset + start + i, chat_attrs(i % 50)) for i in range(per_request)],
        )
        out.append(req.SerializeToString())
    return out


def _client(
    port: int,
    bodies: list[bytes],
    concurrency: int,
    result: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    async def main() -> float:
        url = f"http://127.0.0.1:{port}/v1/traces"
        queue = list(reversed(bodies))
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:

            async def worker() -> None:
                while queue:
                    body = queue.pop()
                    response = await client.post(
                        url, content=body, headers={"content-type": "application/x-protobuf"}
                    )
                    if response.status_code != 200:
                        raise RuntimeError(f"HTTP {response.status_code}: {response.content!r}")

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - started

    result.put(asyncio.run(main()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--spans-per-request", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--bootstrap", default="")
    args = parser.parse_args()
    broker = None
    bootstrap = args.bootstrap
    if not bootstrap:
        broker = EmbeddedBroker()
        broker.start()
        bootstrap = broker.bootstrap
    try:
        ensure_topics(bootstrap, {"bench.base": 4, "bench.otlp": 4, "bench.dlq": 1})
        # 1. Baseline: the same events, produced raw.
        events = []
        for body in _bodies(args.spans, args.spans_per_request, 0):
            req = request("x", [])
            req.ParseFromString(body)
            events.extend(map_request(req, datetime.now(UTC)).events)
        raw = [msgspec.json.encode(e) for e in events]
        producer = TelemetryProducer(bootstrap, "bench.base")
        started, cpu = time.perf_counter(), time.process_time()
        report = producer.send_all(raw)
        baseline = time.perf_counter() - started
        baseline_cpu = time.process_time() - cpu
        assert report.delivered == len(raw), report
        # 2. The collector, fed over OTLP/HTTP by another process.
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                kafka=KafkaSettings(
                    bootstrap_servers=bootstrap,
                    telemetry_topic="bench.otlp",
                    dlq_topic="bench.dlq",
                ),
                storage=StorageSettings(data_dir=str(Path(tmp))),
                collector=CollectorSettings(http_port=0, grpc_port=0, source_rate=0, global_rate=0),
            )
            elapsed, collector_cpu = asyncio.run(_run_collector(settings, args))
        rate_base = len(raw) / baseline
        rate_otlp = args.spans / elapsed
        print(
            f"spans: {args.spans} ({args.spans_per_request} per request, "
            f"{args.concurrency} in flight)"
        )
        print(
            f"baseline raw produce: {rate_base:,.0f} events/s ({baseline:.2f} s, "
            f"{baseline_cpu / len(raw) * 1e6:.1f} us CPU/event)"
        )
        print(
            f"collector OTLP/HTTP:  {rate_otlp:,.0f} spans/s ({elapsed:.2f} s, "
            f"{collector_cpu / args.spans * 1e6:.1f} us CPU/span in the collector's process)"
        )
        print(f"ratio: {rate_otlp / rate_base:.3f}")
    finally:
        if broker is not None:
            broker.stop()


async def _run_collector(settings: Settings, args: argparse.Namespace) -> tuple[float, float]:
    """Seconds to ingest every span, and the CPU the collector's process used meanwhile."""
    collector = Collector(settings)
    await collector.start()
    try:
        bodies = _bodies(args.spans, args.spans_per_request, 10**9)
        ctx = multiprocessing.get_context("spawn")
        result: multiprocessing.Queue[float] = ctx.Queue()
        proc = ctx.Process(
            target=_client, args=(collector.http_port, bodies, args.concurrency, result)
        )
        cpu = time.process_time()
        proc.start()
        elapsed = await asyncio.to_thread(result.get, True, 600.0)
        cpu = time.process_time() - cpu
        await asyncio.to_thread(proc.join)
        registry = collector.ingest.metrics.registry
        delivered = registry.get_sample_value("collector_events_delivered_total")
        assert delivered == args.spans, f"{delivered} of {args.spans} delivered"
        return float(elapsed), cpu
    finally:
        await collector.stop()


if __name__ == "__main__":
    main()
