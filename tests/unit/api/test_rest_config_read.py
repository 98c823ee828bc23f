"""The config read in front of the router answers as the full route does, and counts once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.rest import config_read
from api.rest.app import create_app
from core.app_config import TaskConfig
from core.settings import ApiSettings, Settings, StorageSettings, updated
from rollout.config_manager import ConfigManager
from storage.api_keys import ApiKeyRepository
from storage.database import create_db_engine, migrate
from tests.recorded_spans import recorded_spans

ADMIN = "unit-admin-key"
SECRET = "a-unit-test-secret-that-is-long-enough-0123"


def _settings(tmp_path: Path, **api: Any) -> Settings:
    return Settings(
        storage=StorageSettings(data_dir=str(tmp_path)),
        api=updated(ApiSettings(bootstrap_admin_key=ADMIN, jwt_secret=SECRET), **api),
    )


def _seed(settings: Settings) -> str:
    """One small config (``shop``); a fresh viewer key."""
    engine = create_db_engine(settings.storage.resolved_database_url)
    migrate(engine)
    ConfigManager(engine).update("shop", {"t": TaskConfig(model="m")}, author="t", reason="seed")
    _, key = ApiKeyRepository(engine).issue("viewer-unit", "viewer")
    engine.dispose()
    return key


class _Counting:
    """Counts the requests that reach the full app (behind the config read)."""

    def __init__(self, app: Any) -> None:
        self.full = app.asgi_handler._full
        self.calls = 0
        app.asgi_handler._full = self

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await self.full(scope, receive, send)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, _Counting, str]]:  # type: ignore[type-arg]
    settings = _settings(tmp_path)
    viewer = _seed(settings)
    app = create_app(settings)
    counting = _Counting(app)
    with TestClient(app) as client:
        yield client, counting, viewer


def _comparable(response: Any) -> tuple[int, bytes, dict[str, str]]:
    volatile = {"x-request-id", "ratelimit-remaining", "ratelimit-reset", "date"}
    return (
        response.status_code,
        response.content,
        {k: v for k, v in response.headers.items() if k not in volatile},
    )


def test_a_read_answers_as_the_full_route_does(served: Any) -> None:
    client, counting, viewer = served
    headers = {"x-api-key": viewer, "accept-encoding": "br"}
    first = client.get("/api/v1/config/shop", headers=headers)  # key not verified yet: full app
    assert counting.calls == 1
    second = client.get("/api/v1/config/shop", headers=headers)  # verified and cached: fast
    assert counting.calls == 1
    assert _comparable(first) == _comparable(second)
    assert second.status_code == 200
    assert second.json()["tasks"]["t"]["model"] == "m"
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert second.headers["ratelimit-limit"] == "2000"
    given = client.get("/api/v1/config/shop", headers={**headers, "x-request-id": "mine-1"})
    assert given.headers["x-request-id"] == "mine-1"


def test_errors_are_the_same_problems(served: Any) -> None:
    client, counting, viewer = served
    client.get("/api/v1/config/shop", headers={"x-api-key": viewer})
    calls = counting.calls
    fast = client.get("/api/v1/config/nope", headers={"x-api-key": viewer, "x-request-id": "r1"})
    assert counting.calls == calls  # answered in front of the router
    assert fast.status_code == 404
    assert fast.headers["content-type"] == "application/problem+json"
    assert fast.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": fast.json()["detail"],
        "instance": "/api/v1/config/nope",
        "request_id": "r1",
    }
    assert "nope" in fast.json()["detail"]
    assert fast.headers["ratelimit-limit"] == "2000"


def test_what_is_off_the_common_path_goes_to_the_full_app(served: Any) -> None:
    client, counting, _ = served
    calls = counting.calls
    assert client.get("/api/v1/config/shop").status_code == 401  # no credentials
    assert client.get("/api/v1/config/shop", headers={"x-api-key": "wrong"}).status_code == 401
    bad_jwt = {"authorization": "Bearer not.a.token"}
    assert client.get("/api/v1/config/shop", headers=bad_jwt).status_code == 401
    versions = client.get("/api/v1/config/shop/versions", headers={"x-api-key": ADMIN})
    assert versions.status_code == 200
    assert client.get("/api/v1/config", headers={"x-api-key": ADMIN}).json() == ["shop"]
    too_long = client.get("/api/v1/config/" + "a" * 513, headers={"x-api-key": ADMIN})
    assert too_long.status_code == 400
    assert counting.calls == calls + 6


def test_a_jwt_reads_in_front_of_the_router(served: Any) -> None:
    client, counting, _ = served
    token = client.post("/api/v1/auth/token", headers={"x-api-key": ADMIN}).json()["access_token"]
    calls = counting.calls
    answer = client.get("/api/v1/config/shop", headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert counting.calls == calls


def test_the_rate_limit_counts_each_read_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path, rate_limit__per_s=0.01, rate_limit__burst=3)
    viewer = _seed(settings)
    with TestClient(create_app(settings)) as client:
        answers = [
            client.get("/api/v1/config/shop", headers={"x-api-key": viewer}) for _ in range(5)
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.json()["status"] == 429


def test_a_permission_the_roles_lack_goes_to_the_guard(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, counting, viewer = served
    client.get("/api/v1/config/shop", headers={"x-api-key": viewer})
    monkeypatch.setattr(config_read, "PERMISSION", "admin.keys")
    calls = counting.calls
    # the fast path refuses to answer; the full route (config.read for every role) does
    assert client.get("/api/v1/config/shop", headers={"x-api-key": viewer}).status_code == 200
    assert counting.calls == calls + 1


def test_a_read_is_a_server_span_when_tracing_is_on(served: Any) -> None:
    client, counting, viewer = served
    with recorded_spans() as exporter:
        client.get("/api/v1/config/shop", headers={"x-api-key": viewer})
        calls = counting.calls
        caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        client.get("/api/v1/config/shop", headers={"x-api-key": viewer, "traceparent": caller})
        assert counting.calls == calls
    [span] = [s for s in exporter.get_finished_spans() if s.name == "GET /api/v1/config/shop"][-1:]
    assert span.context is not None
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
