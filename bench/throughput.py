"""Processor throughput against the raw Kafka consume rate, in the same run.

Produces N telemetry events (~200 bytes) to a broker, then measures:
  1. baseline: confluent-kafka assign()+consume of every partition to the end, msgspec decode
     of each record into a plain struct (the "raw" rate of the processor issue);
  2. the real processor: ``python -m bytewax.run flows.main`` with ``kafka.tail=false`` (the
     same command lines the orchestrator runs, 1 or more processes) until it exits.
Prints events/s of each, the ratio, the processor's CPU time per event and its peak RSS.

    .venv/bin/python -m bench.throughput --events 1000000 --partitions 4 --processes 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta

import msgspec
from confluent_kafka import Consumer, Producer, TopicPartition

from core.settings import KafkaSettings, ProcessorSettings, Settings, StorageSettings
from flows.kafka_batches import CONSUMER_TUNING
from orchestrator.services.processor import bytewax_commands, ensure_recovery_store
from storage.kafka import EmbeddedBroker, ensure_topics

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class _Record(msgspec.Struct):
    """What the baseline decodes each record into: the contract's fields, no validation."""

    event_id: str
    timestamp: int | str
    app: str
    task: str = "default"
    model: str | None = None
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    status: str = "ok"


_BASELINE_DECODER = msgspec.json.Decoder(_Record)


def _calls_before(i: int, feedback_every: int) -> int:
    """How many of events 0..i-1 are calls (the rest are feedback)."""
    return i - (i - 1) // feedback_every if feedback_every and i else i


def _event(
    i: int, rng: random.Random, per_second: int, feedback_every: int = 0
) -> tuple[str, bytes]:
    """Event ``i`` and its app: an ``llm_call``; with ``feedback_every`` K, calls carry a
    ``request_id`` and every K-th event is instead the ``feedback`` of the call before it.

    Calls are numbered on their own, so they spread over the apps, tasks and models alike.
    """
    at = int((T0 + timedelta(seconds=i / per_second)).timestamp() * 1000)
    c = _calls_before(i, feedback_every)  # this call's number, or the next call's
    if feedback_every and i and i % feedback_every == 0:
        app = f"app-{(c - 1) % 10}"
        event: dict[str, object] = {
            "kind": "feedback",
            "event_id": f"f{i}",
            "timestamp": at,
            "app": app,
            "request_id": f"r{c - 1}",
            "quality": round(rng.random(), 3),
        }
    else:
        app = f"app-{c % 10}"
        event = {
            "event_id": f"e{c}",
            "timestamp": at,
            "app": app,
            "task": f"task-{c % 3}",
            "model": "gpt-4o-mini" if c % 2 else "claude-3-5-haiku-latest",
            "latency_ms": round(rng.uniform(100, 2000), 1),
            "input_tokens": rng.randint(100, 2000),
            "output_tokens": rng.randint(10, 400),
            "status": "ok" if c % 50 else "error",
        }
        if feedback_every:
            event["request_id"] = f"r{c}"
    return app, json.dumps(event, separators=(",", ":")).encode()


def produce(bootstrap: str, topic: str, n: int, per_second: int, feedback_every: int = 0) -> float:
    """Send ``n`` events keyed by app; returns the mean record size in bytes."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500000,
        }
    )
    rng = random.Random(1)
    size = 0
    for i in range(n):
        app, value = _event(i, rng, per_second, feedback_every)
        size += len(value)
        while True:
            try:
                # Keyed by app: a feedback goes to its call's partition (and app state).
                producer.produce(topic, value=value, key=app.encode())
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    producer.flush(120)
    return size / n


def raw_consume(bootstrap: str, topic: str, partitions: int) -> tuple[int, float]:
    """Baseline: consume everything, msgspec-decode each record; returns (events, seconds)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-raw",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            **CONSUMER_TUNING,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    count, done = 0, 0
    start = time.perf_counter()
    while done < partitions:
        for msg in consumer.consume(1000, 1.0):
            if msg.error():
                done += 1
                continue
            _BASELINE_DECODER.decode(msg.value())
            count += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return count, elapsed


def run_processor(
    settings: Settings, env: dict[str, str], profile: str = ""
) -> tuple[float, float, int]:
    """The real flow; returns (seconds, CPU seconds of its processes, peak RSS in KiB of the
    largest child).

    With ``profile``, the first process runs under cProfile and writes its stats there.
    """
    full_env = {**env, **settings.as_env()}
    ensure_recovery_store(settings)
    commands = bytewax_commands(settings)
    if profile:
        commands[0] = [commands[0][0], "-m", "cProfile", "-o", profile, *commands[0][1:]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=full_env) for cmd in commands]
    codes, peak = [], 0
    for p in procs:
        # wait4: this child's own peak RSS (RUSAGE_CHILDREN keeps the largest child ever).
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        codes.append(p.returncode)
        peak = max(peak, usage.ru_maxrss)
    elapsed = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"processor failed with exit codes {codes}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu, peak


def _settings(bootstrap: str, topic: str, args: argparse.Namespace, data_dir: str) -> Settings:
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, telemetry_topic=topic, dlq_topic=topic + ".dlq", tail=False
        ),
        storage=StorageSettings(database_url=args.database_url, data_dir=data_dir),
        processor=dataclasses.replace(
            ProcessorSettings(), workers=args.workers, processes=args.processes
        ),
    )


def memory(bootstrap: str, args: argparse.Namespace) -> None:
    """Peak RSS of the processor at ``--events`` and at ``--memory`` events, in one run.

    Both runs span the same event time with the same keys (apps, tasks, models): the larger
    one is produced at a proportionally higher event-time rate, so only the event count grows.
    """
    from storage.database import create_db_engine, migrate

    peaks = []
    for n in (args.events, args.memory):
        topic = f"bench.memory.{os.getpid()}.{n}"
        ensure_topics(bootstrap, {topic: args.partitions, topic + ".dlq": 1})
        per_second = max(1, round(args.per_second * n / args.events))
        produce(bootstrap, topic, n, per_second, args.feedback_every)
        with tempfile.TemporaryDirectory() as tmp:
            settings = _settings(bootstrap, topic, args, tmp)
            migrate(create_db_engine(settings.storage.resolved_database_url))
            seconds, _, rss_kib = run_processor(settings, dict(os.environ))
        peaks.append(rss_kib / 1024)
        print(
            f"{n:>11,} events at {per_second:,}/s of event time ({n / per_second:,.0f} s span): "
            f"peak RSS of a processor process {rss_kib / 1024:,.0f} MiB ({seconds:.1f} s)"
        )
    print(f"peak RSS {args.memory:,} / {args.events:,} events: {peaks[1] / peaks[0]:.2f}")


def main() -> None:
    """Parse arguments, run both measurements, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--per-second", type=int, default=1000, help="event-time rate")
    parser.add_argument(
        "--feedback-every",
        type=int,
        default=0,
        help="K > 0: calls carry request ids and every K-th event is a feedback (the join path)",
    )
    parser.add_argument("--bootstrap", default="", help="outside Kafka (default: embedded tansu)")
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temp dir")
    parser.add_argument("--profile", default="", help="write cProfile stats of the processor here")
    parser.add_argument(
        "--memory",
        type=int,
        default=0,
        help="N > 0: only the memory mode, peak RSS at --events and at N events (same span)",
    )
    args = parser.parse_args()

    broker = None
    bootstrap = args.bootstrap
    if not bootstrap:
        broker = EmbeddedBroker()
        broker.start()
        bootstrap = broker.bootstrap
    topic = f"bench.telemetry.{os.getpid()}"
    try:
        if args.memory:
            memory(bootstrap, args)
            return
        ensure_topics(bootstrap, {topic: args.partitions, topic + ".dlq": 1})
        t = time.perf_counter()
        size = produce(bootstrap, topic, args.events, args.per_second, args.feedback_every)
        print(
            f"produced {args.events} events ({size:.0f} B mean) in {time.perf_counter() - t:.1f} s"
        )

        cpu_before = time.process_time()  # this process's threads: librdkafka's too
        count, raw_s = raw_consume(bootstrap, topic, args.partitions)
        raw_cpu = time.process_time() - cpu_before
        assert count == args.events, f"baseline read {count} of {args.events}"
        with tempfile.TemporaryDirectory() as tmp:
            settings = _settings(bootstrap, topic, args, tmp)
            from storage.database import create_db_engine, migrate

            migrate(create_db_engine(settings.storage.resolved_database_url))
            flow_s, flow_cpu, rss_kib = run_processor(settings, dict(os.environ), args.profile)
        with tempfile.TemporaryDirectory() as tmp:
            # The same command on an empty topic: what start-up and shutdown alone cost.
            ensure_topics(bootstrap, {topic + ".empty": args.partitions})
            empty = dataclasses.replace(
                settings,
                kafka=dataclasses.replace(settings.kafka, telemetry_topic=topic + ".empty"),
                storage=dataclasses.replace(settings.storage, data_dir=tmp),
            )
            migrate(create_db_engine(empty.storage.resolved_database_url))
            idle_s, idle_cpu, _ = run_processor(empty, dict(os.environ))
        raw_rate, flow_rate = args.events / raw_s, args.events / flow_s
        steady_rate = args.events / max(flow_s - idle_s, 1e-9)
        print(
            f"baseline  raw consume + decode : {raw_rate:>10,.0f} events/s ({raw_s:.2f} s, "
            f"{raw_cpu / args.events * 1e6:.2f} us CPU per event)"
        )
        print(
            f"processor flows.main ({args.processes} proc x {args.workers} workers): "
            f"{flow_rate:>10,.0f} events/s ({flow_s:.2f} s, incl. start-up)"
        )
        print(
            f"  without start-up/shutdown ({idle_s:.2f} s on an empty topic): "
            f"{steady_rate:>10,.0f} events/s"
        )
        print(f"ratio processor / baseline      : {flow_rate / raw_rate:.3f}")
        print(f"ratio without start-up          : {steady_rate / raw_rate:.3f}")
        print(
            f"processor CPU (all processes)   : {flow_cpu:.2f} s, "
            f"{(flow_cpu - idle_cpu) / args.events * 1e6:.2f} us per event without start-up"
        )
        print(f"peak RSS of a processor process : {rss_kib / 1024:.0f} MiB")
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
