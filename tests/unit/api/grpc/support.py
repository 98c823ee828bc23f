"""Helpers for gRPC tests: a real ``grpc.aio`` server on port 0 in a thread, and stubs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import grpc

from api.grpc import GrpcServer, create_server, open_resources
from api.service.layer import ServiceLayer
from core.settings import GrpcSettings, Settings
from proto.llmopt.v1 import (
    admin_pb2_grpc,
    config_pb2_grpc,
    integrations_pb2_grpc,
    metrics_pb2_grpc,
    optimization_pb2_grpc,
)

T = TypeVar("T")


def fast_grpc(settings: Settings, **grpc_fields: Any) -> Settings:
    """``settings`` with streams polling every 0.1 s (and any other grpc fields)."""
    fields: dict[str, Any] = {"watch_poll_interval": 0.1, "health_interval": 0.2}
    fields.update(grpc_fields)
    from datetime import timedelta

    typed = {
        k: timedelta(seconds=v)
        if isinstance(getattr(GrpcSettings(), k), timedelta) and isinstance(v, int | float)
        else v
        for k, v in fields.items()
    }
    return settings.with_overrides(grpc=replace(settings.grpc, **typed))


@dataclass
class RunningServer:
    """A started server, its resources and the loop it runs on."""

    server: GrpcServer
    resources: ServiceLayer
    loop: asyncio.AbstractEventLoop

    @property
    def target(self) -> str:
        """``host:port`` to dial."""
        return f"127.0.0.1:{self.server.port}"

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@contextmanager
def grpc_server(
    settings: Settings, *, ingest: Any = None, **kwargs: Any
) -> Iterator[RunningServer]:
    """Serve ``settings`` on a free port in a background thread until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        holder["stop"] = stop
        try:
            async with open_resources(settings, ingest=ingest, **kwargs) as resources:
                server = create_server(settings, resources, port=0)
                await server.start()
                holder["running"] = RunningServer(server, resources, loop)
                ready.set()
                await stop.wait()
                await server.stop(1.0)
        except BaseException as exc:
            holder["error"] = exc
            ready.set()
            raise

    def run() -> None:
        asyncio.set_event_loop(loop)
        with contextlib.suppress(BaseException):  # reported through holder
            loop.run_until_complete(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("gRPC test server did not start within 30 s")
    if "error" in holder:
        raise holder["error"]
    try:
        yield holder["running"]
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(15)
        loop.close()


@dataclass
class Stubs:
    """One stub per ``llmopt.v1`` service over one channel."""

    channel: grpc.Channel
    optimization: optimization_pb2_grpc.OptimizationServiceStub
    config: config_pb2_grpc.ConfigServiceStub
    metrics: metrics_pb2_grpc.MetricsServiceStub
    integrations: integrations_pb2_grpc.IntegrationServiceStub
    admin: admin_pb2_grpc.AdminServiceStub


def stubs(channel: grpc.Channel) -> Stubs:
    """Stubs of every service on ``channel``."""
    return Stubs(
        channel=channel,
        optimization=optimization_pb2_grpc.OptimizationServiceStub(channel),
        config=config_pb2_grpc.ConfigServiceStub(channel),
        metrics=metrics_pb2_grpc.MetricsServiceStub(channel),
        integrations=integrations_pb2_grpc.IntegrationServiceStub(channel),
        admin=admin_pb2_grpc.AdminServiceStub(channel),
    )


@contextmanager
def client(target: str) -> Iterator[Stubs]:
    """A plaintext channel to ``target`` and its stubs."""
    with grpc.insecure_channel(target) as channel:
        yield stubs(channel)


def key(value: str) -> tuple[tuple[str, str], ...]:
    """Metadata that authenticates with an API key."""
    return (("x-api-key", value),)
