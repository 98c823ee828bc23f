"""``[api]``: the REST surface: address, TLS, auth, rate limits, request bounds, console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core.settings.rules import Int, Num, OneOf, StrList, Text
from core.settings.spec import section, setting

__all__ = ["ApiRateLimitSettings", "ApiSettings"]


@dataclass(frozen=True, slots=True)
class ApiRateLimitSettings:
    """Rate limits of the REST and gRPC APIs (GCRA, shared through Redis when it is set)."""

    per_s: float = setting(
        1000.0,
        "requests/s per API key or token subject (0: off)",
        Num(0),
        old="api.rate_limit_per_s",
    )
    burst: int = setting(
        2000, "burst per API key or token subject", Int(1), old="api.rate_limit_burst"
    )
    anonymous_per_s: float = setting(
        20.0,
        "requests/s per client IP on open routes and failed logins",
        Num(0),
        old="api.anonymous_rate_limit_per_s",
    )
    anonymous_burst: int = setting(
        100, "burst per client IP", Int(1), old="api.anonymous_rate_limit_burst"
    )
    prefix: str = setting(
        "llmopt:rl",
        "Redis key prefix of the shared limiter state",
        Text(min_len=1),
        old="api.rate_limit_prefix",
    )


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The REST surface."""

    host: str = setting(
        "127.0.0.1",
        "REST listen address",
        Text(min_len=1),
        shown="`127.0.0.1` (`0.0.0.0` in production)",
        restart=True,
    )
    port: int = setting(8080, "REST port", Int(0, 65535), restart=True)
    workers: int = setting(
        0,
        "REST server worker processes (granian) on the one port; more than 1 needs Redis",
        Int(0, 64),
        shown="`0`: one per core with `storage.redis_url`, else 1",
    )
    tls_cert_path: str = setting(
        "",
        "PEM certificate: HTTPS with h2 by ALPN (set with `api.tls_key_path`)",
        shown="empty: plain HTTP/1.1 and h2c",
    )
    tls_key_path: str = setting("", "PEM private key of `api.tls_cert_path`")
    bootstrap_admin_key: str = setting(
        "",
        "when set, an `admin` API key with this value exists at start-up",
        shown="empty (`dev-admin-key` in development)",
        secret=True,
    )
    jwt_algorithm: str = setting(
        "HS256", "`HS256` (`api.jwt_secret`) or `RS256` (key pair)", OneOf(("HS256", "RS256"))
    )
    jwt_secret: str = setting(
        "",
        "HS256 secret (put it in `.secrets.toml`)",
        Text(min_bytes=32),
        shown="empty: no tokens",
        secret=True,
    )
    jwt_private_key_path: str = setting(
        "", "RS256 PEM file that signs (only replicas that issue tokens)"
    )
    jwt_public_key_path: str = setting("", "RS256 PEM file that verifies")
    jwt_ttl: timedelta = setting(
        timedelta(minutes=15), "lifetime of a token from `/api/v1/auth/token`"
    )
    jwt_issuer: str = setting("llmopt", "the tokens' `iss`", Text(min_len=1))
    cors_origins: tuple[str, ...] = setting(
        (),
        'allowed origins, e.g. `["https://console.example"]`',
        StrList("a list of origins"),
        shown="empty: no CORS",
    )
    request_timeout: timedelta = setting(timedelta(seconds=30), "longer requests answer 504")
    max_body_bytes: int = setting(
        10 * 1024 * 1024, "largest request body (telemetry batches)", Int(1024)
    )
    max_batch_events: int = setting(10_000, "events per telemetry request", Int(1))
    config_cache_ttl: timedelta = setting(
        timedelta(seconds=5),
        "how long a cached active config is trusted (changes through the API refresh it at once)",
    )
    console_session_ttl: timedelta = setting(
        timedelta(hours=8), "lifetime of a console log-in ([console](console.md))"
    )
    console_secret: str = setting(
        "",
        "the key that signs console session cookies",
        Text(min_bytes=32),
        shown="empty: a random key in the shared cache",
        secret=True,
    )
    rate_limit: ApiRateLimitSettings = section(ApiRateLimitSettings)
