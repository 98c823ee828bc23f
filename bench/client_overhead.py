"""The client SDK's cost on an application's hot path, against baselines in the same run.

Measures, per call, in process (no network: the config is in memory, telemetry is queued):

1. ``route``: :meth:`llmopt_client.LlmoptClient.route` on a task with a canary (one dict
   lookup, one BLAKE2b of the request id, one small object), against two baselines: a dict
   lookup of the task, and the bare ``hashlib.blake2b`` of the request id;
2. ``route + record``: routing plus building the call's telemetry event and queueing it for
   :class:`llmopt_client.RestReporter` (its daemon thread sends nothing: no API is reachable
   and the buffer is bounded), what the adapters add around an LLM call;
3. memory: the routing table of an app with ``--tasks`` tasks (each with a canary and a cache),
   per 1,000 tasks, from ``tracemalloc``.

Usage: ``.venv/bin/python -m bench.client_overhead [--calls 200000] [--tasks 1000]``
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import time
import tracemalloc
from collections.abc import Callable

import msgspec
from llmopt_client import LlmoptClient, RoutingTable, decode_config

_TARGET_US = 20.0


def _config(tasks: int) -> bytes:
    body = {
        "app": "bench",
        "version": 3,
        "tasks": {
            f"task-{i}": {
                "model": "gpt-4o",
                "provider": "openai",
                "params": {"temperature": 0.2, "max_tokens": 256},
                "cache": {"ttl_s": 300},
                "canary": {"version": 4, "weight": 0.25, "overrides": {"model": "gpt-4o-mini"}},
            }
            for i in range(tasks)
        },
    }
    return msgspec.json.encode(body)


def _per_call_us(fn: Callable[[int], object], calls: int, repeats: int = 5) -> float:
    """Best of ``repeats`` runs of ``fn(i)`` for i in range(calls), in microseconds per call."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for i in range(calls):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    raw = _config(args.tasks)
    config = decode_config(raw)
    client = LlmoptClient("bench", api_url="http://127.0.0.1:9", start=False, timeout=0.1)
    client._watcher.table = RoutingTable(config)  # as the watcher does after a fetch
    rids = [f"req-{i:012d}" for i in range(args.calls)]
    names = [f"task-{i % args.tasks}" for i in range(args.calls)]
    lookup = {name: i for i, name in enumerate(config.tasks)}

    def dict_lookup(i: int) -> object:
        return lookup.get(names[i])

    def blake(i: int) -> object:
        return hashlib.blake2b(rids[i].encode(), digest_size=8).digest()

    def route(i: int) -> object:
        return client.route(names[i], rids[i])

    def route_record(i: int) -> object:
        r = client.route(names[i], rids[i])
        return client.record(r, latency_ms=120.0, input_tokens=200, output_tokens=20)

    base_dict = _per_call_us(dict_lookup, args.calls)
    base_hash = _per_call_us(blake, args.calls)
    routed = _per_call_us(route, args.calls)
    recorded = _per_call_us(route_record, args.calls // 4, repeats=3)
    reporter = client.reporter
    dropped = getattr(reporter, "dropped", 0)

    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    decoded = decode_config(raw)
    mid = tracemalloc.get_traced_memory()[0]
    table = RoutingTable(decoded)
    end = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    config_kib = (mid - start) / args.tasks * 1000 / 1024
    table_kib = (end - mid) / args.tasks * 1000 / 1024
    assert table.route("task-0", "x").model is not None

    print(f"calls {args.calls}, tasks {args.tasks}")
    print(f"baseline dict lookup        {base_dict:8.3f} us/call")
    print(f"baseline blake2b(request)   {base_hash:8.3f} us/call")
    print(
        f"route                       {routed:8.3f} us/call  "
        f"= {routed / base_dict:5.1f}x dict lookup, {routed / base_hash:5.1f}x blake2b  "
        f"(target < {_TARGET_US:g} us: {'met' if routed < _TARGET_US else 'MISSED'})"
    )
    print(
        f"route + record (queued)     {recorded:8.3f} us/call  "
        f"= {recorded / base_hash:5.1f}x blake2b  "
        f"(target < {_TARGET_US:g} us: {'met' if recorded < _TARGET_US else 'MISSED'})"
    )
    print(
        f"memory per 1,000 tasks      {config_kib + table_kib:8.1f} KiB "
        f"(decoded config {config_kib:.1f}, routing table {table_kib:.1f}; "
        f"config JSON {len(raw) / args.tasks * 1000 / 1024:.1f} KiB)"
    )
    print(f"(telemetry buffer: {dropped} oldest events dropped, bounded as in an outage)")
    client._watcher.stop()


if __name__ == "__main__":
    main()
