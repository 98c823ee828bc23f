"""Transport: reflection, health (and its flip when PostgreSQL goes away), graceful shutdown,
TLS with certificates made here (server and client), message limits, deadlines, metrics."""

from __future__ import annotations

import datetime as dt
import ipaddress
import queue
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.grpc.server import SERVICE_NAMES
from proto.llmopt.v1 import admin_pb2, admin_pb2_grpc, config_pb2, config_pb2_grpc
from tests.conftest import PG_ADMIN_URL
from tests.unit.api.grpc.support import fast_grpc, grpc_server, key
from tests.unit.api.rest_support import ADMIN_KEY, rest_settings

pytestmark = pytest.mark.integration
ADMIN = key(ADMIN_KEY)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_reflection_lists_and_describes_the_services(fresh_database: Any, redis_url: str) -> None:
    with (
        grpc_server(fast_grpc(rest_settings(fresh_database(), redis_url))) as running,
        grpc.insecure_channel(running.target) as channel,
    ):
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        found = database.FindFileContainingSymbol("llmopt.v1.ConfigService")
    assert services == {
        *SERVICE_NAMES,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert found.name == "llmopt/v1/config.proto"
    assert [m.name for m in found.service[0].method] == [
        "GetConfig",
        "UpdateConfig",
        "ListVersions",
        "RollbackConfig",
        "WatchConfig",
    ]


def _statuses(channel: grpc.Channel) -> dict[str, int]:
    health = health_pb2_grpc.HealthStub(channel)
    return {
        name: health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
        for name in ("", *SERVICE_NAMES)
    }


def test_health_is_not_serving_when_postgresql_is_unreachable(
    fresh_database: Any, redis_url: str
) -> None:
    with (
        grpc_server(fast_grpc(rest_settings(fresh_database(), redis_url))) as up,
        grpc.insecure_channel(up.target) as channel,
    ):
        assert set(_statuses(channel).values()) == {SERVING}
    down_url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    with (
        grpc_server(fast_grpc(rest_settings(down_url, redis_url))) as down,
        grpc.insecure_channel(down.target) as channel,
    ):
        assert set(_statuses(channel).values()) == {NOT_SERVING}
        # The API answers UNAVAILABLE, never leaking the connection details.
        with pytest.raises(grpc.RpcError) as caught:
            config_pb2_grpc.ConfigServiceStub(channel).ListVersions(
                config_pb2.ListVersionsRequest(app="x"), metadata=ADMIN
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == "database unavailable"


def test_health_flips_when_the_database_is_stopped_and_on_shutdown(
    fresh_database: Any, redis_url: str
) -> None:
    url = fresh_database()
    with (
        grpc_server(fast_grpc(rest_settings(url, redis_url))) as running,
        grpc.insecure_channel(running.target) as channel,
    ):
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="llmopt.v1.ConfigService")
        )
        seen: queue.Queue[int] = queue.Queue()
        threading.Thread(
            target=lambda: [seen.put(r.status) for r in _until_error(watch)], daemon=True
        ).start()
        assert seen.get(timeout=5) == SERVING
        name = make_url(url).database
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:  # the database goes away under the running server
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
        assert seen.get(timeout=10) == NOT_SERVING
        watch.cancel()


def _until_error(stream: Any) -> Any:
    try:
        yield from stream
    except grpc.RpcError:
        return


def test_graceful_shutdown_goes_not_serving_before_stopping(
    fresh_database: Any, redis_url: str
) -> None:
    with (
        grpc_server(fast_grpc(rest_settings(fresh_database(), redis_url))) as running,
        grpc.insecure_channel(running.target) as channel,
    ):
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        stream = iter(_until_error(watch))
        assert next(stream).status == SERVING
        stopping = threading.Thread(target=lambda: running.run(running.server.stop(2.0)))
        stopping.start()
        assert next(stream).status == NOT_SERVING
        stopping.join(10)
        assert not stopping.is_alive()
        with pytest.raises(grpc.RpcError) as caught:
            admin_pb2_grpc.AdminServiceStub(channel).Stats(
                admin_pb2.StatsRequest(), metadata=ADMIN, timeout=2
            )
    assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: str,
    key_: Any,
    issuer: x509.Name,
    signer: Any,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key_.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key_: Any) -> bytes:
    return key_.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test-ca", ca_key, _name("test-ca"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("localhost", server_key, ca.subject, ca_key, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("client-1", client_key, ca.subject, ca_key)
    files = {
        "ca": _pem(ca),
        "cert": _pem(server),
        "key": _key_pem(server_key),
        "client_cert": _pem(client),
        "client_key": _key_pem(client_key),
    }
    paths = {}
    for name, data in files.items():
        path = tmp_path / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = str(path)
    return {"pem": files, "path": paths}


def _tls_version(port: int, ca_path: str) -> str | None:
    context = ssl.create_default_context(cafile=ca_path)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version()


def test_tls_serves_with_the_configured_certificate_and_tls_1_3(
    fresh_database: Any, redis_url: str, pki: dict[str, Any]
) -> None:
    settings = fast_grpc(
        rest_settings(fresh_database(), redis_url),
        tls_cert_path=pki["path"]["cert"],
        tls_key_path=pki["path"]["key"],
    )
    with grpc_server(settings) as running:
        assert running.server.tls
        credentials = grpc.ssl_channel_credentials(root_certificates=pki["pem"]["ca"])
        with grpc.secure_channel(running.target, credentials) as channel:
            stats = admin_pb2_grpc.AdminServiceStub(channel).Stats(
                admin_pb2.StatsRequest(), metadata=ADMIN, timeout=10
            )
            assert stats.api_keys >= 0
        with grpc.insecure_channel(running.target) as plain, pytest.raises(grpc.RpcError) as caught:
            admin_pb2_grpc.AdminServiceStub(plain).Stats(
                admin_pb2.StatsRequest(), metadata=ADMIN, timeout=3
            )
        assert caught.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        assert _tls_version(running.server.port, pki["path"]["ca"]) == "TLSv1.3"


def test_tls_with_client_certificates_refuses_clients_without_one(
    fresh_database: Any, redis_url: str, pki: dict[str, Any]
) -> None:
    settings = fast_grpc(
        rest_settings(fresh_database(), redis_url),
        tls_cert_path=pki["path"]["cert"],
        tls_key_path=pki["path"]["key"],
        tls_client_ca_path=pki["path"]["ca"],
    )
    with grpc_server(settings) as running:
        anonymous = grpc.ssl_channel_credentials(root_certificates=pki["pem"]["ca"])
        with grpc.secure_channel(running.target, anonymous) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                admin_pb2_grpc.AdminServiceStub(channel).Stats(
                    admin_pb2.StatsRequest(), metadata=ADMIN, timeout=5
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        mutual = grpc.ssl_channel_credentials(
            root_certificates=pki["pem"]["ca"],
            private_key=pki["pem"]["client_key"],
            certificate_chain=pki["pem"]["client_cert"],
        )
        with grpc.secure_channel(running.target, mutual) as channel:
            stats = admin_pb2_grpc.AdminServiceStub(channel).Stats(
                admin_pb2.StatsRequest(), metadata=ADMIN, timeout=10
            )
            assert stats.api_keys >= 0


def test_tls_settings_missing_a_file_stop_start_up(fresh_database: Any, redis_url: str) -> None:
    from core.errors import ConfigurationError

    settings = fast_grpc(rest_settings(fresh_database(), redis_url), tls_cert_path="/nope.pem")
    with (
        pytest.raises(ConfigurationError, match=r"grpc\.tls_cert_path|grpc\.tls_key_path"),
        grpc_server(settings),
    ):
        pass


def test_message_limit_and_server_deadline_are_enforced(
    fresh_database: Any, redis_url: str
) -> None:
    settings = fast_grpc(
        rest_settings(fresh_database(), redis_url),
        max_receive_message_bytes=64 * 1024,
        unary_timeout=0.0001,
    )
    with (
        grpc_server(settings) as running,
        grpc.insecure_channel(running.target) as channel,
    ):
        config = config_pb2_grpc.ConfigServiceStub(channel)
        with pytest.raises(grpc.RpcError) as too_big:
            config.UpdateConfig(
                config_pb2.UpdateConfigRequest(app="shop", reason="x" * 100_000), metadata=ADMIN
            )
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as slow:
            admin_pb2_grpc.AdminServiceStub(channel).Stats(admin_pb2.StatsRequest(), metadata=ADMIN)
        assert slow.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_prometheus_counts_calls_by_method_and_code(fresh_database: Any, redis_url: str) -> None:
    ok = {"service": "llmopt.v1.AdminService", "method": "Stats", "code": "OK"}
    denied = {"service": "llmopt.v1.AdminService", "method": "Stats", "code": "UNAUTHENTICATED"}
    before_ok = _sample("llmopt_grpc_requests_total", ok)
    before_denied = _sample("llmopt_grpc_requests_total", denied)
    latency = {"service": "llmopt.v1.AdminService", "method": "Stats"}
    before_latency = _sample("llmopt_grpc_request_duration_seconds_count", latency)
    with (
        grpc_server(fast_grpc(rest_settings(fresh_database(), redis_url))) as running,
        grpc.insecure_channel(running.target) as channel,
    ):
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        admin.Stats(admin_pb2.StatsRequest(), metadata=ADMIN)
        admin.Stats(admin_pb2.StatsRequest(), metadata=ADMIN)
        with pytest.raises(grpc.RpcError):
            admin.Stats(admin_pb2.StatsRequest())
    assert _sample("llmopt_grpc_requests_total", ok) - before_ok == 2
    assert _sample("llmopt_grpc_requests_total", denied) - before_denied == 1
    assert _sample("llmopt_grpc_request_duration_seconds_count", latency) - before_latency == 3
