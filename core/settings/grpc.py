"""``[grpc]``: the gRPC API (``llmopt.v1``): address, TLS, message limits, deadlines, streams."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core.settings.rules import Int, Text
from core.settings.spec import setting

__all__ = ["GrpcSettings"]

_MESSAGE = Int(1024)


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    """The gRPC API (``llmopt.v1``): address, TLS, message limits, deadlines, streams."""

    enabled: bool = setting(
        True, "`false`: the orchestrator does not start the gRPC server", restart=True
    )
    host: str = setting("127.0.0.1", "gRPC listen address", Text(min_len=1), restart=True)
    port: int = setting(50051, "gRPC port (`0`: a free port)", Int(0, 65535), restart=True)
    workers: int = setting(
        1,
        "gRPC server processes sharing the port (`SO_REUSEPORT`, the kernel spreads "
        "connections); `1`: the server runs in the orchestrator and `RecordTelemetry` shares the "
        "collector's pipeline; more: each process has its own service layer and ingest pipeline "
        "(as REST workers), needs `storage.redis_url`",
        Int(0, 64),
        shown="`1` (`0`: one per usable core with `storage.redis_url`, else 1)",
        restart=True,
    )
    tls_cert_path: str = setting(
        "",
        "PEM certificate chain; with `grpc.tls_key_path`: TLS (1.3 whenever the client offers "
        "it; grpcio has no minimum-version option, its floor is 1.2)",
        shown="empty: plaintext",
        restart=True,
    )
    tls_key_path: str = setting("", "PEM private key of the certificate", restart=True)
    tls_client_ca_path: str = setting(
        "",
        "PEM CA bundle: clients must present a certificate it signed (mutual TLS)",
        restart=True,
    )
    max_receive_message_bytes: int = setting(
        16 * 1024 * 1024,
        "largest request message; larger ones end the call with `RESOURCE_EXHAUSTED`",
        _MESSAGE,
        restart=True,
    )
    max_send_message_bytes: int = setting(
        16 * 1024 * 1024, "largest response message", _MESSAGE, restart=True
    )
    unary_timeout: timedelta = setting(
        timedelta(seconds=30),
        "server-side deadline of unary and client-stream calls (`DEADLINE_EXCEEDED`); a "
        "client's shorter deadline always applies",
    )
    grace: timedelta = setting(
        timedelta(seconds=5),
        "on shutdown, health goes `NOT_SERVING`, then in-flight calls may finish this long",
    )
    watch_poll_interval: timedelta = setting(
        timedelta(seconds=1),
        "streams re-read storage this often (a missed pub/sub message is late, never lost)",
    )
    stream_lookback: timedelta = setting(
        timedelta(hours=1), "how far back streams look for new windows"
    )
    health_interval: timedelta = setting(
        timedelta(seconds=5),
        "how often `grpc.health.v1` re-probes the dependencies",
        restart=True,
    )
