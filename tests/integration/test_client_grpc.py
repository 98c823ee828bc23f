"""The SDK following its config over the real gRPC ``WatchConfig`` stream (fail static)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from llmopt_client import ListReporter, LlmoptClient
from llmopt_client.grpc_watch import GrpcConfigWatcher

from api.rest.app import create_app
from tests.unit.api.grpc.support import fast_grpc, grpc_server
from tests.unit.api.rest_support import ADMIN_KEY, rest_settings

pytestmark = pytest.mark.integration
ADMIN = {"x-api-key": ADMIN_KEY}


def _until(condition: Callable[[], bool], what: str, deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_config_streams_over_watch_config_and_stays_when_the_server_goes(
    fresh_database: Any, redis_url: str
) -> None:
    app = f"grpc-sdk-{uuid.uuid4().hex[:8]}"
    settings = fast_grpc(rest_settings(fresh_database(), redis_url), watch_poll_interval=0.2)
    tasks = {
        "classify": {
            "model": "gpt-4o",
            "params": {"max_tokens": 256, "temperature": 0.5},
            "canary": {"version": 77, "weight": 1.0, "overrides": {"params": {"max_tokens": 64}}},
        }
    }
    with TestClient(create_app(settings)) as rest:
        rest.put(f"/api/v1/config/{app}", json={"tasks": tasks}, headers=ADMIN).raise_for_status()
        with grpc_server(settings) as running:
            llmopt = LlmoptClient(
                app, http=rest, api_key=ADMIN_KEY, reporter=ListReporter(),
                grpc_target=running.target,
            )  # fmt: skip
            config = llmopt.wait_for_config(60)
            assert config is not None
            assert config.version == 1
            route = llmopt.route("classify", "r1")
            assert (route.model, route.variant, route.config_version) == ("gpt-4o", "canary", 77)
            assert route.params == {"max_tokens": 64}  # overrides replace a field; ints stay ints
            assert llmopt.route("classify", "r1").config.canary is None
            watcher = llmopt._watcher
            assert isinstance(watcher, GrpcConfigWatcher)
            changed = {"classify": {"model": "gpt-4o-mini"}}
            rest.put(f"/api/v1/config/{app}", json={"tasks": changed}, headers=ADMIN)
            _until(lambda: watcher.stats.version == 2, "the pushed version 2")
            assert llmopt.route("classify", "r1").model == "gpt-4o-mini"
            assert llmopt.refresh()  # GetConfig
        # The server is gone: the stream breaks, the last config stays in use.
        _until(lambda: watcher.stats.failures >= 1, "the broken stream to be counted")
        assert watcher.stats.stale
        assert llmopt.route("classify", "r1").model == "gpt-4o-mini"
        assert not llmopt.refresh()
        llmopt.close()


def test_the_sdk_descriptor_copy_is_current() -> None:
    from proto.client_descriptor import TARGET, render

    assert TARGET.read_text() == render(), "run `make proto` (python -m proto.client_descriptor)"
