"""One of several gRPC server processes on one port (``grpc.workers`` > 1).

Each process opens its own service layer (database pool, Redis cache and limits, its own
telemetry ingest pipeline with its own spill folder, as a REST worker) and serves the whole
API on the shared port with ``SO_REUSEPORT``: the kernel spreads new connections over the
processes. Its per-method metrics go to files of the parent's metrics directory, which the
parent exports summed. SIGTERM stops it gracefully (health ``NOT_SERVING``, in-flight calls
finish within ``grpc.grace``); new settings come from the parent over a queue, and
``AdminService/Reload`` goes up to the parent over another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import multiprocess

from api.grpc.resources import open_resources
from api.grpc.server import create_server
from api.service.process_metrics import record_in
from core.lifetime import stop_with_parent
from core.settings import Settings

__all__ = ["WorkerPlan", "serve_worker", "worker_count"]


def worker_count(settings: Settings) -> int:
    """``grpc.workers``, or when 0: one per usable core with Redis, else 1."""
    if settings.grpc.workers:
        return settings.grpc.workers
    return len(os.sched_getaffinity(0)) if settings.storage.redis_url else 1


@dataclass
class WorkerPlan:
    """What a worker process is started with (picklable: it crosses a spawn)."""

    settings: Settings
    port: int
    metrics_dir: str
    reloads: Any  # a queue to the parent, or None when the API has no reload hook
    updates: Any  # a queue of new settings from the parent (None: stop following)
    ready: Any  # an event set once the server accepts calls
    setup: Callable[[Settings], None] | None = None  # logging, tracing


def serve_worker(plan: WorkerPlan) -> None:
    """The body of a worker process: serve until SIGTERM/SIGINT or the parent's death."""
    stop_with_parent(os.getppid())
    if plan.setup is not None:
        plan.setup(plan.settings)
    registry = record_in(plan.metrics_dir)
    try:
        asyncio.run(_serve(plan, registry))
    finally:
        multiprocess.mark_process_dead(os.getpid(), plan.metrics_dir)  # type: ignore[no-untyped-call]


async def _serve(plan: WorkerPlan, registry: Any) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads = plan.reloads
    on_reload = None if reloads is None else (lambda: reloads.put_nowait("reload"))
    async with open_resources(plan.settings, own_ingest=True, on_reload=on_reload) as resources:
        server = create_server(
            plan.settings, resources, port=plan.port, registry=registry, reuse_port=True
        )
        await server.start()

        def follow_settings() -> None:
            while True:
                settings = plan.updates.get()
                if settings is None:
                    return
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(server.reload, settings)

        threading.Thread(target=follow_settings, name="grpc-settings", daemon=True).start()
        plan.ready.set()
        await stop.wait()
        await server.stop()
