"""``GET /api/v1/config/{app}``: ``ETag`` on every answer, 304 to a matching ``If-None-Match``.

Both paths answer alike: the full route (first read of an API key) and the read in front of the
router (later reads).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.rest.app import create_app
from api.rest.etag import etag_of, not_modified
from storage.api_keys import ApiKeyRepository
from storage.database import create_db_engine
from tests.unit.api.test_rest_config_read import _Counting, _seed, _settings


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient[Any], _Counting, str, str]]:
    settings = _settings(tmp_path)
    viewer = _seed(settings)
    app = create_app(settings)
    counting = _Counting(app)
    with TestClient(app) as client:
        yield client, counting, viewer, settings.storage.resolved_database_url


def test_matching_if_none_match_gets_304_on_both_paths_and_a_change_gets_200(served: Any) -> None:
    client, counting, viewer, url = served
    headers = {"x-api-key": viewer}
    first = client.get("/api/v1/config/shop", headers=headers)  # the full route
    assert counting.calls == 1
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag == etag_of(first.content)
    assert etag.startswith('W/"')
    fast = client.get("/api/v1/config/shop", headers=headers)  # the read in front
    assert counting.calls == 1
    assert fast.headers["etag"] == etag

    again = client.get("/api/v1/config/shop", headers={**headers, "if-none-match": etag})
    assert counting.calls == 1
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    other = client.get("/api/v1/config/shop", headers={**headers, "if-none-match": 'W/"other"'})
    assert (other.status_code, other.content) == (200, first.content)

    engine = create_db_engine(url)
    _, fresh = ApiKeyRepository(engine).issue("viewer-etag", "viewer")
    full_key = {"x-api-key": fresh, "if-none-match": f'"x", {etag}'}
    via_route = client.get("/api/v1/config/shop", headers=full_key)  # a new key: full route
    assert counting.calls == 2
    assert (via_route.status_code, via_route.content) == (304, b"")

    engine.dispose()
    put = client.put(
        "/api/v1/config/shop",
        json={"tasks": {"t": {"model": "n"}}, "reason": "x"},
        headers={"x-api-key": "unit-admin-key"},
    )
    assert put.status_code == 200
    changed = client.get("/api/v1/config/shop", headers={**headers, "if-none-match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["tasks"]["t"]["model"] == "n"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", False),
        ("*", True),
        ('W/"abc"', True),
        ('"abc"', True),
        ('"x" , W/"abc"', True),
        ('W/"abd"', False),
    ],
)
def test_if_none_match_uses_weak_comparison(header: str, expected: bool) -> None:
    assert not_modified(header, 'W/"abc"') is expected
