"""Auth and the permission matrix over gRPC: every method x every role, keys and JWTs, limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import jwt
import pytest

from api.grpc import decode_details
from api.grpc.permissions import METHOD_PERMISSIONS
from api.grpc.server import SERVICE_NAMES
from api.service.permissions import PERMISSIONS
from proto.llmopt.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    config_pb2,
    errors_pb2,
    integrations_pb2,
    metrics_pb2,
    optimization_pb2,
)
from storage.api_keys import ROLES
from tests.unit.api.grpc.support import RunningServer, fast_grpc, grpc_server, key
from tests.unit.api.rest_support import JWT_SECRET, migrated_database, rest_settings, role_keys

pytestmark = pytest.mark.integration

_MODULES = (admin_pb2, config_pb2, integrations_pb2, metrics_pb2, optimization_pb2)


def _methods() -> list[tuple[str, Any]]:
    out = []
    for module in _MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                out.append((f"/{service.full_name}/{method.name}", method))
    return sorted(out, key=lambda m: m[0])


METHODS = _methods()


def test_every_method_of_every_service_has_a_permission() -> None:
    assert {m.rsplit("/", 2)[1] for m, _ in METHODS} == set(SERVICE_NAMES)
    assert len(METHODS) == 28
    assert sorted(METHOD_PERMISSIONS) == [m for m, _ in METHODS]
    assert set(METHOD_PERMISSIONS.values()) <= set(PERMISSIONS)


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    with migrated_database() as url:
        keys = role_keys(url)
        with grpc_server(fast_grpc(rest_settings(url, redis_url))) as running:
            yield running, keys


def _invoke(channel: grpc.Channel, path: str, method: Any, metadata: Any) -> grpc.StatusCode:
    """Call ``path`` with an empty request; the status it ended with (OK when it answered)."""
    request = _message(method.input_type)
    kwargs = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": lambda b: b,
    }
    try:
        if method.client_streaming and method.server_streaming:
            call = channel.stream_stream(path, **kwargs)(iter([]), metadata=metadata, timeout=2)
            list(call)
        elif method.client_streaming:
            channel.stream_unary(path, **kwargs)(iter([]), metadata=metadata, timeout=2)
        elif method.server_streaming:
            stream = channel.unary_stream(path, **kwargs)(request, metadata=metadata, timeout=1)
            next(iter(stream), None)
            stream.cancel()
        else:
            channel.unary_unary(path, **kwargs)(request, metadata=metadata, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _message(descriptor: Any) -> Any:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("path", "method"), METHODS, ids=[m for m, _ in METHODS])
def test_method_allows_exactly_the_roles_of_its_permission(
    server: tuple[RunningServer, dict[str, str]], role: str, path: str, method: Any
) -> None:
    running, keys = server
    permission = METHOD_PERMISSIONS[path]
    with grpc.insecure_channel(running.target) as channel:
        code = _invoke(channel, path, method, key(keys[role]))
    if role in PERMISSIONS[permission]:
        assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED


def test_no_or_bad_credentials_are_unauthenticated_on_every_method(
    server: tuple[RunningServer, dict[str, str]],
) -> None:
    running, _ = server
    with grpc.insecure_channel(running.target) as channel:
        codes = {p: _invoke(channel, p, m, ()) for p, m in METHODS}
        bad = {p: _invoke(channel, p, m, key("not-a-key")) for p, m in METHODS}
    assert set(codes.values()) == {grpc.StatusCode.UNAUTHENTICATED}
    assert set(bad.values()) == {grpc.StatusCode.UNAUTHENTICATED}


def _token(roles: list[str], **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "svc:ci", "roles": roles, "iat": now, "exp": now + 60, "iss": "llmopt"}
    body.update(claims)
    return jwt.encode(body, JWT_SECRET, algorithm="HS256")


def test_bearer_tokens_use_the_same_matrix_and_are_verified(
    server: tuple[RunningServer, dict[str, str]],
) -> None:
    running, _ = server
    stats = "/llmopt.v1.AdminService/Stats"
    summary = "/llmopt.v1.MetricsService/GetSummary"
    methods = dict(METHODS)
    with grpc.insecure_channel(running.target) as channel:

        def call(path: str, token: str) -> grpc.StatusCode:
            return _invoke(channel, path, methods[path], (("authorization", f"Bearer {token}"),))

        assert call(stats, _token(["admin"])) == grpc.StatusCode.OK
        assert call(stats, _token(["viewer"])) == grpc.StatusCode.PERMISSION_DENIED
        assert call(summary, _token(["viewer"])) == grpc.StatusCode.INVALID_ARGUMENT  # no app
        expired = _token(["admin"], exp=int(time.time()) - 10)
        assert call(stats, expired) == grpc.StatusCode.UNAUTHENTICATED
        forged = jwt.encode({"sub": "x", "roles": ["admin"]}, "wrong-secret-" * 4, "HS256")
        assert call(stats, forged) == grpc.StatusCode.UNAUTHENTICATED
        unsigned = jwt.encode(
            {"sub": "x", "roles": ["admin"], "iat": 1, "exp": 2**40, "iss": "llmopt"},
            None,
            algorithm="none",
        )
        assert call(stats, unsigned) == grpc.StatusCode.UNAUTHENTICATED


def test_rate_limit_is_resource_exhausted_with_retry_info(redis_url: str) -> None:
    with migrated_database() as url:
        settings = fast_grpc(
            rest_settings(url, redis_url, rate_limit__per_s=0.5, rate_limit__burst=2)
        )
        keys = role_keys(url)
        with (
            grpc_server(settings) as running,
            grpc.insecure_channel(running.target) as channel,
        ):
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            outcomes = []
            for _ in range(4):
                try:
                    admin.Stats(admin_pb2.StatsRequest(), metadata=key(keys["admin"]))
                    outcomes.append("ok")
                except grpc.RpcError as exc:
                    outcomes.append(exc.code().name)
                    last = exc
    assert outcomes[:2] == ["ok", "ok"]
    assert outcomes[2:] == ["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]
    metadata = dict(last.trailing_metadata())
    assert int(metadata["retry-after"]) >= 1
    status = decode_details(last.trailing_metadata())
    assert status is not None
    assert status.details[0].type_url == "type.googleapis.com/google.rpc.RetryInfo"
    retry = errors_pb2.RetryInfo.FromString(status.details[0].value)
    assert retry.retry_delay.seconds == int(metadata["retry-after"])
