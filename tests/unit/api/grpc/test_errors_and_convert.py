"""The one error mapping to gRPC status codes, and the struct <-> message conversions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from sqlalchemy.exc import OperationalError

from api.grpc import FieldError, decode_details, server_credentials, translate
from api.grpc.convert import event_json, optional, to_builtins, to_message
from api.grpc.permissions import is_open, permission_for
from core.decisions import Decision, ExpectedImpact
from core.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    StorageUnavailableError,
    ValidationError,
)
from core.settings import GrpcSettings
from proto.llmopt.v1 import common_pb2, config_pb2, errors_pb2, optimization_pb2


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ValidationError("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (AuthenticationError("who"), grpc.StatusCode.UNAUTHENTICATED),
        (PermissionDeniedError("no"), grpc.StatusCode.PERMISSION_DENIED),
        (NotFoundError("gone"), grpc.StatusCode.NOT_FOUND),
        (ConflictError("taken"), grpc.StatusCode.ALREADY_EXISTS),
        (
            OverloadedError("slow down", retry_after=2.2, cause="backpressure"),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
        (StorageUnavailableError("redis"), grpc.StatusCode.UNAVAILABLE),
        (ConfigurationError("no tokens"), grpc.StatusCode.UNAVAILABLE),
        (OperationalError("SELECT 1", {}, Exception("secret host")), grpc.StatusCode.UNAVAILABLE),
        (RuntimeError("boom"), grpc.StatusCode.INTERNAL),
    ],
)
def test_every_error_kind_maps_to_one_status(error: Exception, code: grpc.StatusCode) -> None:
    found, message, metadata = translate(error)
    assert found == code
    status = decode_details(metadata)
    assert status is not None
    assert (status.code, status.message) == (code.value[0], message)
    assert "secret host" not in message
    if code == grpc.StatusCode.INTERNAL:
        assert message == "internal error"


def test_invalid_argument_names_the_field() -> None:
    _, _, metadata = translate(ValidationError("limit must be between 1 and 500, not 0"))
    status = decode_details(metadata)
    assert status is not None
    violation = errors_pb2.BadRequest.FromString(status.details[0].value).field_violations[0]
    assert (violation.field, violation.description) == (
        "limit",
        "limit must be between 1 and 500, not 0",
    )
    _, message, metadata = translate(FieldError("tasks.faq.model", "must be a string"))
    assert message == "tasks.faq.model: must be a string"
    status = decode_details(metadata)
    assert status is not None
    violation = errors_pb2.BadRequest.FromString(status.details[0].value).field_violations[0]
    assert violation.field == "tasks.faq.model"
    _, _, metadata = translate(ValidationError("Expected `int`, got `str`"))
    status = decode_details(metadata)
    assert status is not None
    assert errors_pb2.BadRequest.FromString(status.details[0].value).field_violations[0].field == ""


def test_overload_carries_retry_info_rounded_up() -> None:
    _, _, metadata = translate(OverloadedError("full", retry_after=2.2, cause="buffer_full"))
    assert dict(metadata)["retry-after"] == "3"
    status = decode_details(metadata)
    assert status is not None
    assert status.details[0].type_url == "type.googleapis.com/google.rpc.RetryInfo"
    assert errors_pb2.RetryInfo.FromString(status.details[0].value).retry_delay.seconds == 3


def test_request_messages_become_plain_data_with_ints_kept() -> None:
    params = struct_pb2.Struct()
    params.update({"max_tokens": 200, "temperature": 0.5, "stop": ["\n"]})
    task = config_pb2.TaskConfig(
        model="m",
        params=params,
        rate_limit=config_pb2.RateLimitConfig(burst=0, requests_per_s=2.5),
        canary=config_pb2.CanaryConfig(version=3, weight=0.0),
    )
    assert to_builtins(task) == {
        "model": "m",
        "params": {"max_tokens": 200, "temperature": 0.5, "stop": ["\n"]},
        "rate_limit": {"requests_per_s": 2.5, "burst": 0},
        "canary": {"version": 3, "weight": 0.0},
    }
    assert optional(task, "provider") is None
    assert optional(task.rate_limit, "burst", 5) == 0


def test_telemetry_events_become_contract_json() -> None:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime(2026, 11, 29, 10, 0, 1, 500_000, tzinfo=UTC))
    attributes = struct_pb2.Struct()
    attributes.update({"region": "eu"})
    event = common_pb2.TelemetryEvent(
        event_id="e1",
        timestamp=stamp,
        app="shop",
        model="m",
        latency_ms=0.0,
        input_tokens=12,
        output_tokens=0,
        attributes=attributes,
    )
    assert json.loads(event_json(event)) == {
        "event_id": "e1",
        "timestamp": "2026-11-29T10:00:01.500Z",
        "app": "shop",
        "model": "m",
        "latency_ms": 0.0,
        "input_tokens": 12,
        "output_tokens": 0,
        "attributes": {"region": "eu"},
    }


def test_structs_become_messages_through_their_json_form() -> None:
    decision = Decision(
        id="d1",
        created_at=datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
        app="shop",
        task="faq",
        strategy="caching",
        action={"cache": {"ttl_s": 60}},
        rationale="repeats",
        expected_impact=ExpectedImpact(cost_change_pct=-20.0),
    )
    message = to_message(decision, optimization_pb2.Decision)
    assert message.created_at.ToDatetime(tzinfo=UTC) == decision.created_at
    assert message.action["cache"]["ttl_s"] == 60
    assert message.expected_impact.cost_change_pct == -20.0
    assert message.status == "proposed"
    assert not message.HasField("deployment_id")


def test_open_methods_and_permissions() -> None:
    assert is_open("/grpc.health.v1.Health/Check")
    assert is_open("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert not is_open("/llmopt.v1.ConfigService/GetConfig")
    assert permission_for("/llmopt.v1.ConfigService/UpdateConfig") == "config.write"
    assert permission_for("/llmopt.v1.ConfigService/Nope") is None


def test_tls_settings_need_both_files() -> None:
    assert server_credentials(GrpcSettings()) is None
    with pytest.raises(ConfigurationError, match=r"grpc\.tls_key_path is empty"):
        server_credentials(GrpcSettings(tls_cert_path="/a.pem"))
    with pytest.raises(ConfigurationError, match=r"grpc\.tls_client_ca_path needs"):
        server_credentials(GrpcSettings(tls_client_ca_path="/ca.pem"))
    with pytest.raises(ConfigurationError, match="cannot be read"):
        server_credentials(GrpcSettings(tls_cert_path="/nope.pem", tls_key_path="/nope.key"))
