"""Every integer in a path or query is bounded the one way (``api.rest.params``): out of range
or not an integer is a 400 naming the parameter, the largest in-range value reaches the handler
and the database without a 5xx; gRPC ids out of range are INVALID_ARGUMENT (the service layer
checks them, ``api.service.bounds``); token exchange when tokens are off is a 404 saying so."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from litestar.serialization import encode_json

from api.rest.app import create_app
from api.rest.params import DB_INT_MAX
from proto.llmopt.v1 import admin_pb2, config_pb2
from tests.unit.api.grpc.support import client, fast_grpc, grpc_server, key
from tests.unit.api.rest_support import ADMIN_KEY, migrated_database, rest_settings, running_server

pytestmark = pytest.mark.integration

HEADERS = {"x-api-key": ADMIN_KEY}
OUT_OF_RANGE = ["0", "-1", str(DB_INT_MAX + 1), str(2**63), str(2**70)]
NOT_INTEGERS = ["1.5", "12abc"]


def int_parameters() -> list[tuple[str, str, str, str, int | None]]:
    """(method, path template, parameter, location, maximum) of every integer parameter."""
    schema = json.loads(
        encode_json(create_app(rest_settings("sqlite://")).openapi_schema.to_schema())
    )
    found = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for param in operation.get("parameters", []):
                if param["in"] == "query" and param["name"] == "app":
                    WITH_APP.add((method.upper(), path))
                types = [param["schema"], *param["schema"].get("oneOf", [])]
                ints = [t for t in types if t.get("type") == "integer"]
                if ints:
                    maximum = param["schema"].get("maximum", ints[0].get("maximum"))
                    bound = None if maximum is None else int(maximum)
                    found.append((method.upper(), path, param["name"], param["in"], bound))
    return found


WITH_APP: set[tuple[str, str]] = set()  # operations that take ``app`` in the query
PARAMS = int_parameters()


@pytest.fixture(scope="module")
def base_url(redis_url: str) -> Iterator[str]:
    with migrated_database() as url:
        app = create_app(rest_settings(url, redis_url, jwt_secret=""))
        with running_server(app) as base:
            yield base


def _request(
    base: str, method: str, path: str, name: str, where: str, value: str
) -> httpx.Response:
    params: dict[str, str] = {}
    url = re.sub(r"\{[^}]+\}", lambda m: value if m.group(0) == "{" + name + "}" else "app-x", path)
    if (method, path) in WITH_APP:
        params["app"] = "app-x"
    if where == "query":
        params[name] = value
        if name in ("from", "to"):  # the diff needs both
            params.setdefault("from" if name == "to" else "to", "1")
    return httpx.request(method, base + url, params=params, headers=HEADERS, timeout=10.0)


def test_every_integer_parameter_has_an_upper_bound() -> None:
    assert len(PARAMS) >= 10, PARAMS
    unbounded = [p for p in PARAMS if p[4] is None]
    assert unbounded == []
    ids = {p[2]: p[4] for p in PARAMS if p[2] != "limit"}
    assert set(ids.values()) == {DB_INT_MAX}, ids


@pytest.mark.parametrize(("method", "path", "name", "where", "maximum"), PARAMS)
def test_out_of_range_integers_are_400_naming_the_parameter(
    base_url: str, method: str, path: str, name: str, where: str, maximum: int
) -> None:
    for value in [*OUT_OF_RANGE, str(maximum + 1)]:
        answer = _request(base_url, method, path, name, where, value)
        assert answer.status_code == 400, (value, answer.text)
        problem: dict[str, Any] = answer.json()
        assert problem["status"] == 400
        # ``from``/``to`` are named by their Python names (``from_version``, ``to_version``).
        names = {name, f"{name}_version"}
        assert any(e.get("key") in names for e in problem["errors"]), problem
    for value in NOT_INTEGERS:  # a path segment that is no integer matches no route: 404
        answer = _request(base_url, method, path, name, where, value)
        assert answer.status_code == (404 if where == "path" else 400), (value, answer.text)


@pytest.mark.parametrize(("method", "path", "name", "where", "maximum"), PARAMS)
def test_the_largest_allowed_integer_reaches_the_handler(
    base_url: str, method: str, path: str, name: str, where: str, maximum: int
) -> None:
    answer = _request(base_url, method, path, name, where, str(maximum))
    assert answer.status_code in (200, 404), answer.text


def test_token_exchange_when_tokens_are_off_is_404_saying_so(base_url: str) -> None:
    answer = httpx.post(base_url + "/api/v1/auth/token", headers=HEADERS)
    assert answer.status_code == 404
    assert "token exchange is not enabled" in answer.json()["detail"]
    assert "x-api-key" in answer.json()["detail"]


def test_grpc_ids_out_of_range_are_invalid_argument(redis_url: str) -> None:
    big = 2**62
    with migrated_database() as url:
        settings = fast_grpc(rest_settings(url, redis_url))
        with grpc_server(settings) as running, client(running.target) as stubs:
            calls = [
                (stubs.config.ListVersions, config_pb2.ListVersionsRequest(app="a", before=big)),
                (
                    stubs.config.RollbackConfig,
                    config_pb2.RollbackConfigRequest(app="a", version=big),
                ),
                (stubs.admin.RevokeApiKey, admin_pb2.RevokeApiKeyRequest(id=big)),
                (stubs.admin.ListAuditLog, admin_pb2.ListAuditLogRequest(before_id=big)),
                (stubs.admin.ListAuditLog, admin_pb2.ListAuditLogRequest(before_id=-1)),
            ]
            for call, request in calls:
                with pytest.raises(grpc.RpcError) as err:
                    call(request, metadata=key(ADMIN_KEY))
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
                assert "must be between 1 and 2147483647" in (err.value.details() or "")
