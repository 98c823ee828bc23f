"""``grpc.workers`` > 1: several server processes on one port, supervised by the gRPC service.

Calls are answered on fresh connections (the kernel spreads them over the processes), every
worker's per-method metrics reach the registry the orchestrator serves, a killed worker is
replaced, new settings reach every worker, ``AdminService/Reload`` reaches the reload hook, and
stop leaves no process behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from core.settings import updated
from orchestrator.service import HealthStatus
from orchestrator.services.grpc import GrpcService
from proto.llmopt.v1 import admin_pb2, admin_pb2_grpc
from tests.unit.api.grpc.support import fast_grpc, key
from tests.unit.api.rest_support import ADMIN_KEY, rest_settings

pytestmark = pytest.mark.integration
ADMIN = key(ADMIN_KEY)
STATS_OK = {"service": "llmopt.v1.AdminService", "method": "Stats", "code": "OK"}


def _stats(port: int, calls: int) -> list[grpc.StatusCode]:
    """``calls`` AdminService/Stats calls, each on a new connection; their status codes."""
    codes = []
    for _ in range(calls):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                admin_pb2_grpc.AdminServiceStub(channel).Stats(
                    admin_pb2.StatsRequest(), metadata=ADMIN, timeout=30
                )
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
    return codes


async def _until(condition: Any, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def test_worker_processes_share_the_port(fresh_database: Any, redis_url: str) -> None:
    settings = fast_grpc(rest_settings(fresh_database(), redis_url), port=0, workers=2)
    registry = CollectorRegistry()
    reloads: list[str] = []

    async def on_reload() -> None:
        reloads.append("reload")

    async def scenario() -> None:
        service = GrpcService(settings, registry=registry, on_reload=on_reload)
        await service.start()
        try:
            pool = service.pool
            assert pool is not None
            assert service.port
            first = pool.pids
            assert len(set(first)) == 2
            assert os.getpid() not in first
            assert (await service.health_check()).status is HealthStatus.HEALTHY

            codes = await asyncio.to_thread(_stats, service.port, 8)
            assert codes == [grpc.StatusCode.OK] * 8
            # Both workers' counts reach the registry the orchestrator serves, summed.
            assert registry.get_sample_value("llmopt_grpc_requests_total", STATS_OK) == 8

            os.kill(first[0], signal.SIGKILL)
            await _until(lambda: pool.respawns == 1 and pool.alive == 2)
            await _until(lambda: pool.pids[0] != first[0])
            codes = await asyncio.to_thread(_stats, service.port, 4)
            assert codes == [grpc.StatusCode.OK] * 4
            # The dead worker's counts stay in the sum.
            assert registry.get_sample_value("llmopt_grpc_requests_total", STATS_OK) == 12

            # AdminService/Reload in a worker reaches the orchestrator's reload hook.
            with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
                admin_pb2_grpc.AdminServiceStub(channel).Reload(
                    admin_pb2.ReloadRequest(), metadata=ADMIN, timeout=30
                )
            await _until(lambda: reloads == ["reload"])

            # New settings reach every worker: one call per 1,000 s over both, a burst of one.
            api = updated(
                settings.api,
                rate_limit__per_s=0.001,
                rate_limit__burst=1,
                rate_limit__prefix=settings.api.rate_limit.prefix + ":reloaded",
            )
            await service.reload(settings.with_overrides(api=api))
            # The workers take it from their queues when they get to it: wait until 12 calls in
            # a row, each on a new connection, are refused. A worker still on the old limit
            # would answer OK to about half of them (the chance that all 12 miss it is 2**-12).
            deadline = time.monotonic() + 120
            while True:
                codes = await asyncio.to_thread(_stats, service.port, 12)
                if codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 12:
                    break
                assert time.monotonic() < deadline, f"still answered {codes}"

        finally:
            pids = service.pool.pids if service.pool is not None else []
            await service.stop()
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert service.port is None
        assert registry.get_sample_value("llmopt_grpc_requests_total", STATS_OK) is None

    asyncio.run(scenario())
