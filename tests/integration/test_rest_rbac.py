"""The permission matrix, walked: every guarded route x every role → allowed or 403.

A route added without a permission fails here (it would be refused for every role), and a
route whose guard lets a role through that the matrix denies (or the reverse) fails too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.rest.app import create_app
from api.rest.auth import is_open
from api.service.permissions import PERMISSIONS
from storage.api_keys import ROLES
from tests.unit.api.rest_support import migrated_database, rest_settings, role_keys

pytestmark = pytest.mark.integration

_DUMMY = {"int": "999999", "str": "no-such-thing"}


def guarded_routes(app: Litestar) -> list[tuple[str, str, str | None]]:
    """(method, concrete path, permission) of every non-open route handler."""
    out = []
    for route in app.routes:
        if is_open(route.path):
            continue
        for handler in route.route_handlers:  # type: ignore[attr-defined]
            for method in sorted(handler.http_methods - {"HEAD", "OPTIONS"}):
                path = re.sub(
                    r"\{[^:}]+:(\w+)\}", lambda m: _DUMMY.get(m.group(1), "x"), route.path
                )
                out.append((method, path, handler.opt.get("permission")))
    return sorted(out)


_APP = create_app(rest_settings("sqlite://"))
ROUTES = guarded_routes(_APP)


def test_every_guarded_route_names_a_known_permission() -> None:
    assert len(ROUTES) >= 30
    missing = [(m, p) for m, p, perm in ROUTES if perm not in PERMISSIONS]
    assert missing == []


@pytest.fixture(scope="module")
def clients(redis_url: str) -> Iterator[tuple[TestClient[Any], dict[str, str]]]:
    with migrated_database() as url:
        keys = role_keys(url)
        with TestClient(create_app(rest_settings(url, redis_url))) as client:
            yield client, keys


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "permission"), ROUTES)
def test_route_allows_exactly_the_roles_of_its_permission(
    clients: tuple[TestClient[Any], dict[str, str]],
    role: str,
    method: str,
    path: str,
    permission: str,
) -> None:
    client, keys = clients
    body = {} if method in ("POST", "PUT", "PATCH") else None
    response = client.request(method, path, headers={"x-api-key": keys[role]}, json=body)
    if role in PERMISSIONS[permission]:  # type: ignore[index]
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert permission in response.json()["detail"]


def test_no_credentials_is_401_on_every_guarded_route(
    clients: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, _ = clients
    statuses = {(m, p): client.request(m, p).status_code for m, p, _ in ROUTES}
    assert set(statuses.values()) == {401}
