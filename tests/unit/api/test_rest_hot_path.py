"""The config read's hot path: pre-compressed bodies, one header pass, request metrics."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from pathlib import Path

import brotli  # type: ignore[import-untyped]
import msgspec
import pytest
from litestar.testing import TestClient

from api.rest.app import create_app
from api.rest.context import before_send
from api.rest.encoding import MIN_COMPRESS_BYTES, encoded_response, negotiate
from core.app_config import TaskConfig
from core.settings import ApiSettings, Settings, StorageSettings
from rollout.config_manager import ConfigManager
from storage.database import create_db_engine, migrate

ADMIN = "unit-admin-key"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    settings = Settings(
        storage=StorageSettings(data_dir=str(tmp_path)), api=ApiSettings(bootstrap_admin_key=ADMIN)
    )
    engine = create_db_engine(settings.storage.resolved_database_url)
    migrate(engine)
    manager = ConfigManager(engine)
    manager.update("small", {"t": TaskConfig(model="m")}, author="test", reason="seed")
    many = {f"task-{i:02d}": TaskConfig(model=f"model-{i}") for i in range(20)}
    manager.update("large", many, author="test", reason="seed")
    engine.dispose()
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _get(client: TestClient, app: str, encoding: str) -> tuple[int, dict[str, str], bytes]:  # type: ignore[type-arg]
    # Raw bytes: the test client would otherwise decode them for us.
    with client.stream(
        "GET",
        f"/api/v1/config/{app}",
        headers={"x-api-key": ADMIN, "accept-encoding": encoding},
    ) as response:
        body = b"".join(response.iter_raw())
        return response.status_code, dict(response.headers), body


@pytest.mark.parametrize("encoding", ["br", "gzip, deflate", "identity"])
def test_a_large_config_is_served_compressed_as_accepted(client, encoding: str) -> None:  # type: ignore[no-untyped-def]
    status, headers, body = _get(client, "large", encoding)
    assert status == 200
    if encoding == "br":
        assert headers["content-encoding"] == "br"
        raw = brotli.decompress(body)
    elif encoding.startswith("gzip"):
        assert headers["content-encoding"] == "gzip"
        raw = gzip.decompress(body)
    else:
        assert "content-encoding" not in headers
        raw = body
    assert len(raw) >= MIN_COMPRESS_BYTES
    if "content-encoding" in headers:
        assert headers["vary"] == "Accept-Encoding"
        assert len(body) < len(raw)
    config = msgspec.json.decode(raw)
    assert config["app"] == "large"
    assert sorted(config["tasks"]) == [f"task-{i:02d}" for i in range(20)]
    assert headers["x-request-id"]
    assert headers["ratelimit-limit"] == "2000"


def test_a_small_config_is_sent_as_it_is(client) -> None:  # type: ignore[no-untyped-def]
    status, headers, body = _get(client, "small", "br, gzip")
    assert status == 200
    assert "content-encoding" not in headers
    assert msgspec.json.decode(body)["tasks"]["t"]["model"] == "m"


def test_other_routes_still_go_through_the_compression_middleware(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/schema/openapi.json", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"


def test_compressed_bodies_are_made_once_per_distinct_body() -> None:
    raw = b'{"app":"x","pad":"' + b"a" * 1000 + b'"}'
    first = encoded_response(raw, "br", "application/json")
    second = encoded_response(bytes(raw), "br", "application/json")
    assert first.content is second.content
    assert brotli.decompress(first.content) == raw
    assert negotiate("gzip, br") == "br"
    assert negotiate("gzip") == "gzip"
    assert negotiate("deflate") is None


def test_before_send_replaces_headers_of_the_same_name_once() -> None:
    scope: dict[str, object] = {
        "type": "http",
        "headers": [(b"x-request-id", b"client-id-1")],
        "state": {"llmopt": {"rate_headers": [(b"retry-after", b"3")]}},
    }
    message = {
        "type": "http.response.start",
        "status": 429,
        "headers": [(b"Retry-After", b"1"), (b"content-type", b"application/json")],
    }
    asyncio.run(before_send(message, scope))  # type: ignore[arg-type]
    assert message["headers"] == [
        (b"content-type", b"application/json"),
        (b"x-request-id", b"client-id-1"),
        (b"retry-after", b"3"),
    ]


def test_request_metrics_keep_litestars_series(client) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        assert client.get("/api/v1/config/small", headers={"x-api-key": ADMIN}).status_code == 200
    assert client.get("/api/v1/config/nope", headers={"x-api-key": ADMIN}).status_code == 404
    metrics = client.get("/metrics").text
    series = (
        'litestar_requests_total{app_name="llmopt_rest",method="GET",'
        'path="/api/v1/config/{app}",status_code="200"}'
    )
    line = next(line for line in metrics.splitlines() if line.startswith(series))
    assert float(line.split()[-1]) >= 3.0
    assert 'path="/api/v1/config/{app}",status_code="404"' in metrics
    assert "litestar_request_duration_seconds_bucket" in metrics
    assert "litestar_requests_in_progress" in metrics
