"""Rules between settings (one value's rule that depends on another's), checked after loading."""

from __future__ import annotations

from core.errors import ConfigurationError
from core.settings.integrations import IntegrationSettings
from core.settings.root import Settings

__all__ = ["check_relations"]


def _fail(message: str) -> None:
    raise ConfigurationError(f"invalid settings: {message}")


def check_relations(settings: Settings) -> None:
    """Raise :class:`ConfigurationError` naming both keys when two settings contradict."""
    p = settings.processor
    if p.sliding_step > p.sliding_window:
        _fail(
            "processor.sliding_step must not exceed processor.sliding_window "
            f"but it is {p.sliding_step} > {p.sliding_window}"
        )
    c = settings.collector
    if c.queue_low_watermark >= c.queue_high_watermark:
        _fail(
            "collector.queue_low_watermark must be below collector.queue_high_watermark but it "
            f"is {c.queue_low_watermark} >= {c.queue_high_watermark}"
        )
    a = settings.api
    if a.jwt_algorithm == "RS256" and not a.jwt_public_key_path:
        _fail(
            "api.jwt_public_key_path must name a PEM file when api.jwt_algorithm is RS256 "
            "but it is empty"
        )
    if a.workers > 1 and not settings.storage.redis_url:
        _fail(
            f"api.workers must be 0 or 1 without storage.redis_url but it is {a.workers} "
            "(each worker would enforce its own rate limits and cache its own configs)"
        )
    if settings.grpc.workers > 1 and not settings.storage.redis_url:
        _fail(
            f"grpc.workers must be 0 or 1 without storage.redis_url but it is "
            f"{settings.grpc.workers} (each process would enforce its own rate limits and cache "
            "its own configs)"
        )
    if bool(a.tls_cert_path) != bool(a.tls_key_path):
        _fail(
            "api.tls_cert_path and api.tls_key_path must be set together "
            f"but they are {a.tls_cert_path!r} and {a.tls_key_path!r}"
        )
    _check_integrations(settings.integrations)
    if settings.kafka.telemetry_topic == settings.kafka.dlq_topic:
        _fail(
            "kafka.dlq_topic must differ from kafka.telemetry_topic "
            f"but both are {settings.kafka.dlq_topic!r}"
        )


def _check_integrations(i: IntegrationSettings) -> None:
    jira = {"email": i.jira.email, "api_token": i.jira.api_token, "project": i.jira.project}
    missing = [k for k, v in jira.items() if not v]
    if i.jira.base_url and missing:
        _fail(
            f"integrations.jira.{missing[0]} must be set when integrations.jira.base_url is set "
            "but it is empty"
        )
    if i.github.token and not i.github.repo:
        _fail(
            "integrations.github.repo must be owner/name when integrations.github.token is set "
            "but it is empty"
        )
    if i.outbox_retry_interval > i.outbox_max_retry_interval:
        _fail(
            "integrations.outbox_retry_interval must not exceed "
            "integrations.outbox_max_retry_interval but it is "
            f"{i.outbox_retry_interval} > {i.outbox_max_retry_interval}"
        )
