"""Processor throughput against the raw Kafka consume rate, in the same run.

Produces N telemetry events (~200 bytes) to a broker, then measures:
  1. baseline: the fastest raw consumer we could write (``bench/raw_consume.py``: raised fetch
     bounds, batches of 10,000, one msgspec decode per batch, connect and first fetch untimed),
     and beside it the raw consumer with the processor's own consumer settings;
  2. the real processor: ``python -m bytewax.run flows.main`` with ``kafka.tail=false`` (the
     same command lines the orchestrator runs, 1 or more processes) until it exits;
  3. what users would write instead: the same windowed aggregation in quix-streams
     (``bench/alternatives/quix_window.py``) and with Bytewax's ``KafkaSource`` and windowing
     operators (``bench/bytewax_window.py``), each also timed on an empty topic.
Prints events/s of each, the ratios, CPU time per event and peak RSS. ``--steady`` instead
measures marginal rates (N/2 and N events, the difference), as an outside measurement did.

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
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer

from bench.raw_consume import consume_fast, consume_like_processor, first_fetch_s
from core.settings import KafkaSettings, ProcessorSettings, Settings, StorageSettings
from orchestrator.services.processor import bytewax_commands, ensure_recovery_store
from storage.kafka import EmbeddedBroker, ensure_topics

T0 = datetime(2026, 1, 1, tzinfo=UTC)


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


def _peak_rss_kib(pid: int) -> int:
    """A running process's own peak RSS (``VmHWM``, KiB), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_commands(commands: list[list[str]], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Run processes until all exit; ``(seconds, CPU seconds, peak RSS KiB, stdout)``.

    The peak RSS is the largest child's ``VmHWM``, read every 20 ms while it runs (a growth in
    its last 20 ms is missed). Not ``ru_maxrss``: Linux starts a child's at its parent's RSS
    at the fork and keeps it across ``exec``, so a child of this (large) process reported at
    least this process's size.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for cmd in commands]
    peaks = dict.fromkeys((p.pid for p in procs), 0)
    outputs: list[str] = []
    readers = [
        threading.Thread(target=lambda p=p: outputs.append(p.stdout.read()), daemon=True)
        for p in procs
    ]
    for reader in readers:
        reader.start()
    while any(p.poll() is None for p in procs):
        for p in procs:
            peaks[p.pid] = max(peaks[p.pid], _peak_rss_kib(p.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    for reader in readers:
        reader.join()
    codes = [p.returncode for p in procs]
    if any(codes):
        raise SystemExit(f"{commands[0][:4]} failed with exit codes {codes}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu, max(peaks.values()), "".join(outputs)


def run_processor(
    settings: Settings, env: dict[str, str], profile: str = ""
) -> tuple[float, float, int]:
    """The real flow; returns (seconds, CPU seconds of its processes, peak RSS in KiB of the
    largest child).

    With ``profile``, the first process runs under cProfile and writes its stats there.
    """
    ensure_recovery_store(settings)
    commands = bytewax_commands(settings)
    if profile:
        commands[0] = [commands[0][0], "-m", "cProfile", "-o", profile, *commands[0][1:]]
    seconds, cpu, peak, _ = run_commands(commands, {**env, **settings.as_env()})
    return seconds, cpu, peak


_ALTERNATIVES = os.path.join(os.path.dirname(__file__), "alternatives")


def _alternative_commands(name: str, bootstrap: str, topic: str, tmp: str) -> list[str]:
    """The command line of an alternative: ``quix`` or ``bytewax`` (its own operators)."""
    if name == "bytewax":
        return [sys.executable, "-m", "bytewax.run", "bench.bytewax_window"]
    return [
        os.path.join(_ALTERNATIVES, ".venv", "bin", "python"),
        os.path.join(_ALTERNATIVES, "quix_window.py"),
        f"--bootstrap={bootstrap}",
        f"--topic={topic}",
        f"--group=bench-quix-{os.path.basename(tmp)}",
        f"--state-dir={tmp}",
    ]


def run_alternative(name: str, bootstrap: str, topic: str) -> tuple[float, float, int, str]:
    """One alternative over ``topic``; ``(seconds, CPU seconds, peak RSS KiB, its output)``."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_BOOTSTRAP": bootstrap, "BENCH_TOPIC": topic}
        return run_commands([_alternative_commands(name, bootstrap, topic, tmp)], env)


def _prepare_alternatives() -> None:
    """Install the alternatives' own environment (``bench/alternatives/uv.lock``) untimed."""
    uv = os.path.join(os.path.dirname(_ALTERNATIVES), "..", ".tools", "bin", "uv")
    subprocess.run(
        [uv if os.path.exists(uv) else "uv", "sync", "--frozen", "--quiet"],
        cwd=_ALTERNATIVES,
        check=True,
    )


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


def _baseline(fn: Any, bootstrap: str, topic: str, partitions: int, n: int) -> tuple[float, float]:
    """A raw consumer's (events/s, CPU µs per event: this process's, librdkafka's threads too)."""
    cpu_before = time.process_time()
    count, seconds = fn(bootstrap, topic, partitions)
    cpu = time.process_time() - cpu_before
    assert count == n, f"baseline read {count} of {n}"
    return n / seconds, cpu / n * 1e6


def _processor(
    bootstrap: str, topic: str, args: argparse.Namespace, profile: str = ""
) -> tuple[float, float, int]:
    """The processor over ``topic`` with a fresh store: ``(seconds, CPU seconds, peak KiB)``."""
    from storage.database import create_db_engine, migrate

    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(bootstrap, topic, args, tmp)
        migrate(create_db_engine(settings.storage.resolved_database_url))
        return run_processor(settings, dict(os.environ), profile)


def _input_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create input topics that state their retention (Kafka's default, 7 days).

    quix-streams configures its changelog topics from the input topic's ``retention.ms`` as
    the broker describes it; tansu describes only the settings a topic was created with.
    """
    limit = str(KafkaSettings().max_message_bytes)
    week = str(7 * 24 * 3600 * 1000)
    configs = {name: {"max.message.bytes": limit, "retention.ms": week} for name in topics}
    ensure_topics(bootstrap, topics, configs=configs)


def compare(bootstrap: str, topic: str, args: argparse.Namespace) -> None:
    """Baselines, the processor and the alternatives over the same ``--events``, one run."""
    n = args.events
    empty = topic + ".empty"
    _input_topics(bootstrap, {topic: args.partitions, empty: args.partitions})
    ensure_topics(bootstrap, {topic + ".dlq": 1, empty + ".dlq": 1})
    t = time.perf_counter()
    size = produce(bootstrap, topic, n, args.per_second, args.feedback_every)
    print(f"produced {n} events ({size:.0f} B mean) in {time.perf_counter() - t:.1f} s")

    raw_rate, raw_cpu = _baseline(consume_fast, bootstrap, topic, args.partitions, n)
    old_rate, old_cpu = _baseline(consume_like_processor, bootstrap, topic, args.partitions, n)
    print(
        f"baseline  fastest raw consume + decode : {raw_rate:>10,.0f} events/s, "
        f"{raw_cpu:.2f} us CPU per event (connect + first fetch, untimed: "
        f"{first_fetch_s[0]:.2f} s)"
    )
    print(
        f"  with the processor's consumer settings: {old_rate:>10,.0f} events/s, "
        f"{old_cpu:.2f} us CPU per event ({old_rate / raw_rate:.3f} of the fastest)"
    )

    rows: list[tuple[str, float, float, float, int]] = []
    flow_s, flow_cpu, rss = _processor(bootstrap, topic, args, args.profile)
    idle_s, idle_cpu, _ = _processor(bootstrap, empty, args)
    label = f"processor flows.main ({args.processes} proc x {args.workers} workers)"
    rows.append((label, flow_s, idle_s, flow_cpu - idle_cpu, rss))
    if args.compare:
        _prepare_alternatives()
        for name, text in (
            ("bytewax", "Bytewax KafkaSource + windowing"),
            ("quix", "quix-streams"),
        ):
            seconds, cpu, peak, out = run_alternative(name, bootstrap, topic)
            idle, idle_c, _, _ = run_alternative(name, bootstrap, empty)
            print(f"  {text}: {out.strip()}")
            rows.append((text, seconds, idle, cpu - idle_c, peak))
    print(
        f"{'':46s} {'events/s':>10s} {'ratio':>6s} {'w/o start':>10s} {'ratio':>6s} "
        f"{'us CPU/ev':>9s} {'peak RSS':>9s}"
    )
    for label, seconds, idle, cpu, peak in rows:
        rate, steady = n / seconds, n / max(seconds - idle, 1e-9)
        print(
            f"{label:46s} {rate:>10,.0f} {rate / raw_rate:>6.3f} {steady:>10,.0f} "
            f"{steady / raw_rate:>6.3f} {cpu / n * 1e6:>9.2f} {peak / 1024:>6.0f} MiB"
        )
    print(f"(start-up and shutdown on an empty topic: {', '.join(f'{r[2]:.2f} s' for r in rows)})")


def steady(bootstrap: str, args: argparse.Namespace) -> None:
    """Marginal rates: N/2 and N events, the rate of the difference (an outside method)."""
    half, n = args.events // 2, args.events
    times: dict[str, list[float]] = {"fastest raw": [], "processor's settings": [], "processor": []}
    for count in (half, n):
        topic = f"bench.steady.{os.getpid()}.{count}"
        ensure_topics(bootstrap, {topic: args.partitions, topic + ".dlq": 1})
        produce(bootstrap, topic, count, args.per_second, args.feedback_every)
        times["fastest raw"].append(
            count / _baseline(consume_fast, bootstrap, topic, args.partitions, count)[0]
        )
        times["processor's settings"].append(
            count / _baseline(consume_like_processor, bootstrap, topic, args.partitions, count)[0]
        )
        times["processor"].append(_processor(bootstrap, topic, args)[0])
    raw = (n - half) / (times["fastest raw"][1] - times["fastest raw"][0])
    for label, (t_half, t_n) in times.items():
        marginal = (n - half) / max(t_n - t_half, 1e-9)
        print(
            f"{label:22s} {half:,}: {t_half:6.2f} s  {n:,}: {t_n:6.2f} s  "
            f"mean {n / t_n:>10,.0f}/s  marginal {marginal:>10,.0f}/s  "
            f"(marginal / fastest raw marginal {marginal / raw:.3f})"
        )


def main() -> None:
    """Parse arguments, run the measurements of the chosen mode, print the figures."""
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
        "--no-compare",
        dest="compare",
        action="store_false",
        help="skip the quix-streams and Bytewax-windowing runs",
    )
    parser.add_argument(
        "--steady",
        action="store_true",
        help="marginal rates of the baselines and the processor from --events/2 and --events",
    )
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
    try:
        if args.memory:
            memory(bootstrap, args)
        elif args.steady:
            steady(bootstrap, args)
        else:
            compare(bootstrap, f"bench.telemetry.{os.getpid()}", args)
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
