"""The HTTP core the Jira, GitHub and Anthropic clients share.

One :class:`ApiTransport` per client: an httpx client (its own or a shared one), credentials kept
as :class:`~integrations.redaction.Secret` headers, retries with backoff and jitter
(:func:`~integrations.retry.with_retries`), a :class:`~integrations.circuit_breaker.CircuitBreaker`,
and errors whose reason is the service's own error message with every secret masked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from core.errors import ConfigurationError
from integrations.circuit_breaker import CircuitBreaker
from integrations.errors import IntegrationError
from integrations.redaction import Secret, redact, register_secret
from integrations.retry import is_retryable_status, parse_retry_after, with_retries

__all__ = ["HEADER_VALUE", "ApiTransport", "ClientOptions", "RetryPolicy", "check_base_url", "clip"]

_log = structlog.get_logger(__name__)

_REASON_MAX = 300


def _utcnow() -> datetime:
    return datetime.now(UTC)


def clip(text: str, limit: int = _REASON_MAX) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a client retries one call (see :func:`~integrations.retry.with_retries`).

    Attributes:
        attempts: The most requests per call.
        base: Backoff ceiling after the first failure, in seconds.
        cap: Largest backoff ceiling, in seconds.
        max_retry_after: Longest wait a service may ask for; longer ones end the call.
    """

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 60.0


@dataclass(frozen=True)
class ClientOptions:
    """What every client takes besides its credentials: transport, retries, breaker, time.

    Attributes:
        client: An httpx client to share (never closed by the API client); ``None``: its own.
        timeout: Seconds allowed for each request.
        policy: Retries.
        breaker: The circuit breaker; ``None``: a fresh one named after the client.
        sleep: Awaited with each retry delay (``asyncio.sleep``; a recorder in tests).
        rng: Jitter source, floats in ``[0, 1)``.
        now: Aware UTC clock (``Retry-After`` dates, rate-limit resets, telemetry timestamps).
        monotonic: Seconds for measuring latency.
    """

    client: httpx.AsyncClient | None = None
    timeout: float = 10.0
    policy: RetryPolicy = RetryPolicy()
    breaker: CircuitBreaker | None = None
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    rng: Callable[[], float] = random.random
    now: Callable[[], datetime] = _utcnow
    monotonic: Callable[[], float] = time.monotonic


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: What an HTTP header value may be (RFC 9110 field-value, ASCII only): a credential outside it
#: cannot be sent, so a client is refused at construction rather than failing at each call.
HEADER_VALUE = re.compile(r"[!-~]([ -~]*[!-~])?")


def check_base_url(target: str, url: str) -> str:
    """Validate an API base URL: ``https``, or ``http`` to a loopback host only.

    Args:
        target: The integration, for the error message.
        url: The base URL.

    Returns:
        The URL without a trailing slash.

    Raises:
        ConfigurationError: The URL is unusable (the message does not repeat it).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ConfigurationError(f"{target} base URL is not a valid URL") from None
    if not parsed.host or parsed.scheme not in ("http", "https"):
        raise ConfigurationError(f"{target} base URL must be an http(s) URL with a host")
    if parsed.scheme == "http" and not _is_loopback(parsed.host):
        raise ConfigurationError(f"{target} base URL must use https (http only to loopback)")
    return str(parsed).rstrip("/")


class ApiTransport:
    """Makes requests to one API with retries, a breaker and masked secrets.

    Args:
        target: The integration's name (``"jira"``...), in logs, errors and the breaker.
        base_url: The API's base URL (checked by :func:`check_base_url`).
        headers: Headers sent with every request; their values may be secrets.
        secrets: Strings to mask in every error reason and in httpx's logs.
        error_reader: Turns a non-2xx answer into a short reason (the API's error message).
        options: Shared client, timeout, retries, breaker and clocks.
        retryable: Which answers are retried (default: 429 and 5xx).
        delay_hint: The wait an answer asks for (default: ``Retry-After``).
    """

    def __init__(
        self,
        target: str,
        base_url: str,
        *,
        headers: Mapping[str, Secret | str],
        secrets: Iterable[str],
        error_reader: Callable[[httpx.Response], str],
        options: ClientOptions | None = None,
        retryable: Callable[[httpx.Response], bool] | None = None,
        delay_hint: Callable[[httpx.Response, datetime], float | None] | None = None,
    ) -> None:
        options = options if options is not None else ClientOptions()
        policy, client, breaker = options.policy, options.client, options.breaker
        if policy.attempts < 1:
            raise ConfigurationError(f"{target} attempts must be at least 1")
        self.target = target
        self.base_url = check_base_url(target, base_url)
        for name, value in headers.items():
            if not HEADER_VALUE.fullmatch(value.reveal() if isinstance(value, Secret) else value):
                raise ConfigurationError(
                    f"{target} {name} must be printable ASCII without leading or trailing "
                    "spaces (it is sent as an HTTP header)"
                )
        self._headers = dict(headers)
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        for secret in self._secrets:
            register_secret(secret)
        self._error_reader = error_reader
        self._timeout = httpx.Timeout(options.timeout)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=self._timeout)
        self.policy = policy
        self.breaker = breaker if breaker is not None else CircuitBreaker(target)
        self._retryable = retryable or (lambda r: is_retryable_status(r.status_code))
        self._delay_hint = delay_hint
        self._sleep = options.sleep
        self._rng = options.rng
        self.now = options.now
        self.monotonic = options.monotonic
        self._closed = False

    def __repr__(self) -> str:
        return f"ApiTransport(target={self.target!r}, base_url={self.base_url!r})"

    def mask(self, text: str) -> str:
        """``text`` with this client's secrets (and every registered one) masked."""
        return redact(text, self._secrets)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        ok_statuses: Iterable[int] = (),
    ) -> httpx.Response:
        """Make one call (with its retries) and return the 2xx answer.

        Args:
            method: The HTTP method.
            path: The path under the base URL, starting with ``/``.
            json: The JSON body, if any.
            params: Query parameters.
            ok_statuses: Non-2xx statuses the caller handles itself (e.g. 404 on a lookup).

        Returns:
            The response, a 2xx or one of ``ok_statuses``.

        Raises:
            CircuitOpenError: The breaker is open; nothing was sent.
            IntegrationError: No answer, or an error answer (reason: the API's message, masked).
        """
        self.breaker.check()
        headers = {k: v.reveal() if isinstance(v, Secret) else v for k, v in self._headers.items()}
        made = 0

        async def call() -> httpx.Response:
            nonlocal made
            made += 1
            return await self._client.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                headers=headers,
                timeout=self._timeout,
                follow_redirects=False,
            )

        log = _log.bind(target=self.target, method=method)
        try:
            response = await with_retries(
                call,
                attempts=self.policy.attempts,
                base=self.policy.base,
                cap=self.policy.cap,
                max_retry_after=self.policy.max_retry_after,
                sleep=self._sleep,
                rng=self._rng,
                now=self.now,
                target=self.target,
                retryable=self._retryable,
                delay_hint=self._delay_hint,
            )
        except IntegrationError:
            self.breaker.record_failure()
            raise
        except httpx.HTTPError as exc:  # not retryable: e.g. a body that cannot be decoded
            self.breaker.record_failure()
            raise IntegrationError(self.target, type(exc).__name__, attempts=made) from None
        status = response.status_code
        if response.is_success or status in set(ok_statuses):
            self.breaker.record_success()
            log.debug("integration.answered", status=status, attempts=made)
            return response
        transient = self._retryable(response)
        if transient:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()  # the service works; the request was refused
        reason = clip(self.mask(self._error_reader(response))) or f"HTTP {status}"
        retry_after = self._wait_asked(response) if transient else None
        log.warning("integration.rejected", status=status, attempts=made, error=reason)
        raise IntegrationError(
            self.target, reason, attempts=made, status=status, retry_after=retry_after
        )

    def _wait_asked(self, response: httpx.Response) -> float | None:
        if self._delay_hint is not None:
            return self._delay_hint(response, self.now())
        return parse_retry_after(response.headers.get("retry-after"), self.now())

    async def close(self) -> None:
        """Close the httpx client if this transport opened it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()
