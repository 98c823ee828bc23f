"""The REST server: the app on granian's worker processes, HTTP/1.1 and HTTP/2, stopped gracefully.

:func:`serve` is the body of one server process (the orchestrator's REST service starts it, so
does ``bench/rest_load.py``): granian's main process binds ``api.host:api.port`` and runs
``api.workers`` worker processes on that one socket, each with its own event loop and its own
app from :func:`api.rest.create_app` (its own service layer: database pool, cache, limiter; the
rate limits and the config cache are shared through Redis when it is configured). HTTP/1.1 and
h2c (prior knowledge) on plain TCP; h2 by ALPN when ``api.tls_cert_path`` and ``api.tls_key_path``
are set.

Graceful stop (SIGTERM/SIGINT to the process, which granian passes to every worker): a worker
first lets the requests it is serving complete (new ones on open connections are still answered
meanwhile), at most for ``api.request_timeout`` (longer requests answer 504 anyway), and only then
starts granian's own shutdown: HTTP/2 connections get GOAWAY, idle HTTP/1.1 ones are closed, the
app's lifespan closes its resources. Draining before the GOAWAY matters: HTTP/2 clients built on
the ``h2`` library (httpx) fail a stream that is still open when a GOAWAY and the PING after it
arrive, although the server would complete it.

A worker's ``POST /api/v1/admin/reload`` and the parent's new settings travel over two queues:
:class:`ServerControl` holds them. Under several workers, each records its Prometheus metrics in
files of one directory of the server process (prometheus_client's multiprocess mode) and
``/metrics``, whichever worker answers it, exports their sums.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from granian import _signals as granian_signals
from granian._granian import WorkerSignal
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server.mp import MPServer
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import Gauge, multiprocess

from api.service.process_metrics import record_in
from core.lifetime import stop_with_parent
from core.settings import Settings

__all__ = ["DrainingApp", "ServerControl", "WorkerSetup", "serve", "worker_count"]

#: Run in each worker before its app is built: logging, tracing (the orchestrator's).
WorkerSetup = Callable[[Settings], None]


def worker_count(settings: Settings) -> int:
    """``api.workers``, or when 0: one per usable core with Redis, else 1.

    Without Redis the rate limiter and the config cache live in the process, so one worker
    is what enforces one limit (settings validation refuses more).
    """
    if settings.api.workers:
        return settings.api.workers
    return len(os.sched_getaffinity(0)) if settings.storage.redis_url else 1


@dataclass
class ServerControl:
    """The queues between the parent and the server: reload requests up, new settings down."""

    reloads: Any = field(default_factory=lambda: multiprocessing.get_context("spawn").Queue())
    settings: Any = field(default_factory=lambda: multiprocessing.get_context("spawn").Queue())


class DrainingApp:
    """Tracks the requests in flight so that a stopping worker can let them complete."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._in_flight = 0
        self._left: int | None = None  # once stopping: requests begun before it, still running
        self._done = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """HTTP requests started and not yet finished."""
        return self._in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection; HTTP requests are counted while they run."""
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        before_stop = self._left is None
        self._in_flight += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._in_flight -= 1
            if before_stop and self._left is not None:
                self._left -= 1
                if not self._left:
                    self._done.set()

    async def drain(self, timeout_s: float, linger_s: float = 0.2) -> bool:
        """Let the requests in flight now complete (at most ``timeout_s``); whether they did.

        Requests that arrive meanwhile are served but not waited for. ``linger_s`` after the
        last one the answers have reached their clients (a GOAWAY read in the same packet as
        an answer makes an ``h2`` client drop that answer).
        """
        if self._left is None:
            self._left = self._in_flight
            if not self._left:
                self._done.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._done.wait()
        await asyncio.sleep(linger_s)
        return self._done.is_set()


def _install_draining_signals(app: DrainingApp, timeout_s: float) -> None:
    """Make granian's worker wait for ``app``'s requests before it begins its own shutdown.

    Granian's worker creates its stop signal with ``granian._signals.set_loop_signals(loop)``
    (SIGINT/SIGTERM set it at once); this worker's version sets it after :meth:`DrainingApp.drain`.
    ``tests/integration/test_rest_server.py`` fails if granian stops calling it.
    """

    def set_loop_signals(loop: asyncio.AbstractEventLoop) -> WorkerSignal:
        stop = WorkerSignal()
        draining: list[asyncio.Task[None]] = []

        async def drain_then_stop() -> None:
            await app.drain(timeout_s)
            stop.set()

        def on_signal() -> None:
            if not draining:
                draining.append(loop.create_task(drain_then_stop()))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        return stop

    granian_signals.set_loop_signals = set_loop_signals


@dataclass
class _AppLoader:
    """Builds a worker's app (picklable: granian hands it to each worker process)."""

    settings: Settings
    setup: WorkerSetup | None
    reloads: Any  # a queue, or None when the app has no reload hook
    metrics_dir: str = ""  # several workers: where their metrics meet
    started: Any = None  # a shared counter each worker's app adds 1 to once it has started

    def __call__(self) -> ASGIApp:
        from api.rest.app import create_app

        if self.setup is not None:
            self.setup(self.settings)
        registry = record_in(self.metrics_dir) if self.metrics_dir else None
        reloads = self.reloads
        on_reload = None if reloads is None else (lambda: reloads.put_nowait("reload"))
        litestar = create_app(self.settings, on_reload=on_reload)
        litestar.state.metrics_registry = registry
        if self.started is not None:
            started = self.started
            litestar.on_startup.append(lambda: _add_one(started))
        if self.metrics_dir:
            directory, pid = self.metrics_dir, os.getpid()
            Gauge(
                "llmopt_rest_workers",
                "REST server worker processes running",
                multiprocess_mode="livesum",
                registry=None,
            ).set(1)
            dead = multiprocess.mark_process_dead  # live gauges of this worker go at its exit
            litestar.on_shutdown.append(lambda: dead(pid, directory))  # type: ignore[no-untyped-call]
        app = DrainingApp(litestar)
        _install_draining_signals(app, self.settings.api.request_timeout.total_seconds())
        return app


def _add_one(counter: Any) -> None:
    with counter.get_lock():
        counter.value += 1


class _RollingServer(MPServer):
    """granian's server whose reload stops an old worker only once its replacement serves.

    granian replaces workers one by one on reload: it starts the new worker, waits
    ``respawn_interval`` and stops the old one. A new worker that takes longer than that to build
    its app (a busy host, a slow database) left the port with no listener for a moment: requests
    were refused (``tests/integration/test_rest_server.py`` saw it). During a reload, starting a
    worker here waits until its app has started (``started`` grows) or it died, then granian's
    ``respawn_interval`` covers binding the socket.
    """

    def __init__(self, *args: Any, started: Any, start_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._started = started
        self._start_timeout_s = start_timeout_s
        self._rolling = False

    def _reload(self, spawn_target: Any, target_loader: Any) -> Any:
        self._rolling = True
        try:
            return super()._reload(spawn_target, target_loader)  # type: ignore[no-untyped-call]
        finally:
            self._rolling = False

    def _spawn_worker(self, *args: Any, **kwargs: Any) -> Any:
        worker: Any = super()._spawn_worker(*args, **kwargs)
        if self._rolling:
            start = worker.start

            def start_and_wait() -> None:
                before = self._started.value
                start()
                deadline = time.monotonic() + self._start_timeout_s  # a guard, not a pace
                while (
                    self._started.value <= before
                    and worker.is_alive()
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.05)

            worker.start = start_and_wait
        return worker


def _granian(settings: Settings, started: Any) -> MPServer:
    api = settings.api
    tls: dict[str, Any] = {}
    if api.tls_cert_path:
        tls = {"ssl_cert": Path(api.tls_cert_path), "ssl_key": Path(api.tls_key_path)}
    return _RollingServer(
        "api.rest:create_app",  # informative only: the app comes from the loader
        address=api.host,
        port=api.port,
        interface=Interfaces.ASGI,
        workers=worker_count(settings),
        http=HTTPModes.auto,
        websockets=False,
        backlog=2048,
        log_level=LogLevels.warning,
        log_access=False,
        # A worker drains for up to request_timeout before granian's own stop begins.
        workers_kill_timeout=int(api.request_timeout.total_seconds()) + 5,
        respawn_interval=1.0,
        respawn_failed_workers=True,  # a crashed worker is replaced (a crash loop ends it all)
        started=started,
        start_timeout_s=settings.orchestrator.start_timeout.total_seconds(),
        **tls,
    )


def _follow_parent() -> None:
    """Stop with the parent, not with the terminal.

    A new session keeps the terminal's Ctrl+C (SIGINT to the foreground group) from reaching
    the server and its workers directly: the parent stops them in its own order. SIGTERM when
    the parent dies (Linux ``PR_SET_PDEATHSIG``) keeps a crashed parent from leaving the port
    taken.
    """
    parent = os.getppid()
    with contextlib.suppress(OSError):
        os.setsid()
    stop_with_parent(parent)


def serve(
    settings: Settings,
    control: ServerControl | None = None,
    setup: WorkerSetup | None = None,
    ready: Any = None,
) -> None:
    """Run granian with ``api.workers`` workers until SIGTERM/SIGINT (a process's main thread).

    Args:
        settings: The settings every worker builds its app from.
        control: Queues to the parent: reload requests from ``POST /api/v1/admin/reload`` go up
            (without it that route answers 503); new settings come down, and the workers are
            replaced one by one with apps built from them (the socket stays open).
        setup: Called in each worker before its app is built (logging, tracing).
        ready: An event set once the socket is bound (workers may still be starting).
    """
    _follow_parent()
    started = multiprocessing.Value("i", 0)
    server = _granian(settings, started)
    metrics_dir = tempfile.mkdtemp(prefix="llmopt-rest-metrics-") if server.workers > 1 else ""
    loader = _AppLoader(
        settings, setup, control.reloads if control is not None else None, metrics_dir, started
    )
    if control is not None:

        def follow_settings() -> None:
            while True:
                changed = control.settings.get()
                if changed is None:
                    return
                loader.settings = changed
                server.signal_handler_reload()  # type: ignore[no-untyped-call]

        threading.Thread(target=follow_settings, name="rest-settings", daemon=True).start()
    if ready is not None:
        server.on_startup(ready.set)
    try:
        server.serve(target_loader=loader, wrap_loader=False)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
