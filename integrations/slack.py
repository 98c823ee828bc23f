"""Slack incoming-webhook client: a :class:`~integrations.notifier.Notification` as Block Kit.

Slack answers a webhook post with 200 and the body ``ok``, or with an error status and a short code
as the body: 400 ``invalid_payload``, 403 ``invalid_token``, 404 ``no_service``, 410
``channel_is_archived``, 429 (with ``Retry-After``), 5xx. The webhook URL is the credential: it is
held in a :class:`~integrations.redaction.Secret`, masked in httpx's logs, and never put into a log
event, an error or the ``repr``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import structlog

from core.errors import ConfigurationError
from integrations.circuit_breaker import CircuitBreaker
from integrations.errors import IntegrationError
from integrations.notifier import DeliveryResult, Notification, Severity
from integrations.redaction import MASK, Secret, redact, register_secret
from integrations.retry import is_retryable_status, parse_retry_after, with_retries

__all__ = ["SEVERITY_EMOJI", "SlackWebhook", "build_slack_message"]

_log = structlog.get_logger(__name__)

SEVERITY_EMOJI: dict[Severity, str] = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
_HEADER_MAX = 150
_SECTION_MAX = 3000
_FIELD_MAX = 2000
_FIELDS_PER_SECTION = 10
_MAX_FIELDS = 40  # 4 field sections: well inside the 50-block limit
_ERROR_MAX = 200
_LOOPBACK_NAMES = {"localhost"}


def _escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn reserves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _link_target(url: str) -> str:
    return url.replace("&", "&amp;").replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")


def build_slack_message(n: Notification) -> dict[str, Any]:
    """Render a notification as a Slack Block Kit webhook payload.

    Blocks: a header (severity emoji and title), a section with the text (and the link), sections
    of mrkdwn fields (``*name*`` over value, 10 per section), and a context with the app and the
    idempotency key. ``text`` is the plain fallback Slack shows in notifications.

    Args:
        n: The notification.

    Returns:
        The JSON-ready payload.
    """
    emoji = SEVERITY_EMOJI[n.severity]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _clip(f"{emoji} {n.title}", _HEADER_MAX),
                "emoji": True,
            },
        }
    ]
    body = _escape(n.text)
    if n.link:
        more = f"<{_link_target(n.link)}|Open details>"
        body = f"{_clip(body, _SECTION_MAX - len(more) - 1)}\n{more}" if body else more
    if body:
        section = {"type": "mrkdwn", "text": _clip(body, _SECTION_MAX)}
        blocks.append({"type": "section", "text": section})
    items = list(n.fields.items())
    shown = items[:_MAX_FIELDS]
    for start in range(0, len(shown), _FIELDS_PER_SECTION):
        chunk = shown[start : start + _FIELDS_PER_SECTION]
        fields = [
            {"type": "mrkdwn", "text": _clip(f"*{_escape(k)}*\n{_escape(v)}", _FIELD_MAX)}
            for k, v in chunk
        ]
        blocks.append({"type": "section", "fields": fields})
    context: list[dict[str, Any]] = []
    if n.app is not None:
        context.append({"type": "mrkdwn", "text": _clip(f"app: *{_escape(n.app)}*", _FIELD_MAX)})
    context.append({"type": "mrkdwn", "text": _clip(f"key: `{_escape(n.key)}`", _FIELD_MAX)})
    if len(items) > _MAX_FIELDS:
        hidden = len(items) - _MAX_FIELDS
        context.append({"type": "mrkdwn", "text": f"_{hidden} more fields not shown_"})
    blocks.append({"type": "context", "elements": context})
    fallback = f"{emoji} [{n.severity}] {_escape(n.title)}"
    if n.text:
        fallback += f": {_escape(n.text)}"
    return {"text": _clip(fallback, _SECTION_MAX), "blocks": blocks}


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SlackWebhook:
    """Delivers notifications to a Slack channel through an incoming webhook.

    Implements :class:`~integrations.notifier.Notifier`. Transport errors, 429 and 5xx are
    retried (see :func:`~integrations.retry.with_retries`); other answers are final.

    Args:
        url: The webhook URL (a secret). ``https``, or ``http`` to a loopback host only.
        client: An httpx client to share; the webhook then does not close it. By default the
            webhook opens its own and closes it in :meth:`close`.
        timeout: Seconds allowed for each request (connect, read, write, pool).
        name: The notifier's name, in logs and results.
        attempts: The most requests per notification.
        base: Backoff ceiling after the first failure, in seconds.
        cap: Largest backoff ceiling, in seconds.
        max_retry_after: Longest ``Retry-After`` to wait for; longer ones end the delivery.
        sleep: Awaited with each retry delay.
        rng: Jitter source, floats in ``[0, 1)``.
        now: Aware UTC clock, to read ``Retry-After`` dates.
        breaker: The webhook's circuit breaker (default: a fresh one named ``name``); while it is
            open, :meth:`send` answers ``circuit_open`` without a request.

    Raises:
        ConfigurationError: The URL is not a usable webhook URL (the message does not repeat it).
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        name: str = "slack",
        attempts: int = 4,
        base: float = 0.5,
        cap: float = 8.0,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        now: Callable[[], datetime] = _utcnow,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise ConfigurationError("slack webhook URL is not a valid URL") from None
        host = parsed.host
        if not host or parsed.scheme not in ("http", "https"):
            raise ConfigurationError("slack webhook URL must be an http(s) URL with a host")
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise ConfigurationError("slack webhook URL has a port out of range")
        if parsed.scheme == "http" and not _is_loopback(host):
            raise ConfigurationError("slack webhook URL must use https (http only to loopback)")
        if attempts < 1:
            raise ConfigurationError("slack attempts must be at least 1")
        self.name = name
        self._url = Secret(str(parsed))
        self._host = host
        segments = {seg for seg in parsed.path.split("/") if len(seg) >= 8} - {"services"}
        whole = {url, str(parsed), parsed.path, parsed.raw_path.decode("ascii")} - {"/"}
        self._path_secrets = tuple(sorted(whole | segments, key=len, reverse=True))
        for secret in self._path_secrets:
            register_secret(secret)
        self._timeout = httpx.Timeout(timeout)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=self._timeout)
        self._attempts = attempts
        self._base = base
        self._cap = cap
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._rng = rng
        self._now = now
        self.breaker = breaker if breaker is not None else CircuitBreaker(name)
        self._closed = False

    def __repr__(self) -> str:
        return f"SlackWebhook(name={self.name!r}, host={self._host!r}, path={MASK!r})"

    async def send(self, n: Notification) -> DeliveryResult:
        """Post ``n`` to the webhook as a Block Kit message.

        Args:
            n: The notification.

        Returns:
            ``ok`` on a 2xx; otherwise the last status and Slack's error code (e.g.
            ``"invalid_payload"``), or ``status=None`` and the transport error's type when no
            answer came back.
        """
        if not self.breaker.allow():
            return DeliveryResult(
                ok=False, attempts=0, error="circuit_open", retry_after=self.breaker.retry_after()
            )
        payload = msgspec.json.encode(build_slack_message(n))
        made = 0

        async def post() -> httpx.Response:
            nonlocal made
            made += 1
            return await self._client.post(
                self._url.reveal(),
                content=payload,
                headers={"content-type": "application/json"},
                timeout=self._timeout,
                follow_redirects=False,
            )

        log = _log.bind(notifier=self.name, key=n.key, severity=n.severity)
        try:
            response = await with_retries(
                post,
                sleep=self._sleep,
                rng=self._rng,
                now=self._now,
                target=self.name,
                attempts=self._attempts,
                base=self._base,
                cap=self._cap,
                max_retry_after=self._max_retry_after,
            )
        except IntegrationError as exc:
            self.breaker.record_failure()
            log.warning("slack.failed", attempts=exc.attempts, error=exc.reason)
            return DeliveryResult(ok=False, attempts=exc.attempts, status=None, error=exc.reason)
        except httpx.HTTPError as exc:  # not retryable: e.g. a body that cannot be decoded
            self.breaker.record_failure()
            reason = type(exc).__name__
            log.warning("slack.failed", attempts=made, error=reason)
            return DeliveryResult(ok=False, attempts=made, status=None, error=reason)
        status = response.status_code
        if response.is_success:
            self.breaker.record_success()
            log.info("slack.delivered", attempts=made, status=status)
            return DeliveryResult(ok=True, attempts=made, status=status)
        error = self._error_code(response)
        wait: float | None = None
        if is_retryable_status(status):
            self.breaker.record_failure()
            wait = parse_retry_after(response.headers.get("retry-after"), self._now())
        else:
            self.breaker.record_success()  # Slack works; it refused this message
        log.warning("slack.rejected", attempts=made, status=status, error=error)
        return DeliveryResult(ok=False, attempts=made, status=status, error=error, retry_after=wait)

    def _error_code(self, response: httpx.Response) -> str:
        """Slack's error code from the body, masked and bounded; the status phrase if empty."""
        lines = response.text.strip().splitlines()
        code = redact(lines[0].strip(), self._path_secrets) if lines else ""
        return _clip(code, _ERROR_MAX) or response.reason_phrase or f"HTTP {response.status_code}"

    async def close(self) -> None:
        """Close the httpx client if this webhook opened it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()
