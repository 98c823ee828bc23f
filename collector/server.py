"""The collector as one object: the ingest pipeline and both OTLP receivers.

Used by the orchestrator's collector service, the tests and the benchmark::

    collector = Collector(settings)       # kafka.bootstrap_servers resolved
    await collector.start()               # binds collector.http_port / grpc_port (0: any free)
    collector.http_port, collector.grpc_port, collector.ingest
    await collector.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from collector.grpc_receiver import start_grpc_server
from collector.http_receiver import OtlpHttpApp
from collector.metrics import CollectorMetrics
from collector.pipeline import TelemetryIngest
from core.settings import Settings

__all__ = ["Collector"]


class Collector:
    """Pipeline + OTLP/HTTP + OTLP/gRPC.

    Args:
        settings: Resolved settings (``collector.*``, ``kafka.*``, ``storage.data_dir``).
        metrics: Metrics to count into (a fresh registry by default).
        clock: Monotonic seconds of the rate limiter (tests freeze it).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: CollectorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self.ingest = TelemetryIngest(settings, metrics=metrics, clock=clock)
        self.http_port = 0
        self.grpc_port = 0
        self._grpc: Any = None
        self._http: asyncio.Task[None] | None = None
        self._shutdown = asyncio.Event()

    async def start(self) -> None:
        """Start the pipeline, then the gRPC and HTTP receivers."""
        c = self._settings.collector
        await self.ingest.start()
        self._grpc, self.grpc_port = await start_grpc_server(self.ingest, c.host, c.grpc_port)
        family = socket.AF_INET6 if ":" in c.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((c.host, c.http_port))
        sock.listen(1024)  # connections queue from now on, before Hypercorn accepts them
        self.http_port = int(sock.getsockname()[1])
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.accesslog = None
        config.graceful_timeout = 5.0
        config.keep_alive_timeout = 75.0
        self._shutdown = asyncio.Event()
        app = OtlpHttpApp(self.ingest, c.max_request_bytes)
        self._http = asyncio.create_task(
            serve(app, config, shutdown_trigger=self._shutdown.wait)  # type: ignore[arg-type]
        )
        await asyncio.sleep(0)

    def running(self) -> bool:
        """True while the HTTP server task lives."""
        return self._http is not None and not self._http.done()

    async def stop(self) -> None:
        """Stop receiving, then deliver or spill what was accepted."""
        self._shutdown.set()
        if self._grpc is not None:
            await self._grpc.stop(grace=5.0)
            self._grpc = None
        if self._http is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._http
            self._http = None
        await self.ingest.stop()
