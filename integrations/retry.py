"""Retries with backoff for the integrations' HTTP calls.

Transient failures (a transport error, a 5xx, a 429) are retried; a ``Retry-After`` header is
honoured when present (seconds or an HTTP-date), otherwise the delay is exponential backoff with
full jitter: ``rng() * min(cap, base * 2 ** (attempt - 1))``. Other 4xx answers are final. The
sleep, the random source and the clock are injected, so tests never wait.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import structlog

from integrations.errors import IntegrationError

__all__ = ["backoff_delay", "is_retryable_status", "parse_retry_after", "with_retries"]

_log = structlog.get_logger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying: 429 and every 5xx.

    Args:
        status: The HTTP status code.

    Returns:
        True for 429 and 500-599.
    """
    return status == 429 or 500 <= status <= 599


def backoff_delay(attempt: int, *, base: float, cap: float, rng: Callable[[], float]) -> float:
    """Exponential backoff with full jitter after the ``attempt``-th failure (1-based).

    Args:
        attempt: Which attempt just failed, starting at 1.
        base: The delay ceiling after the first failure, in seconds.
        cap: The largest delay ceiling, in seconds.
        rng: A source of floats in ``[0, 1)``.

    Returns:
        ``rng() * min(cap, base * 2 ** (attempt - 1))`` seconds.
    """
    ceiling = cap if attempt > 64 else min(cap, base * 2.0 ** (attempt - 1))
    return rng() * ceiling


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Read a ``Retry-After`` header: delta-seconds or an HTTP-date.

    Args:
        value: The header's value, or ``None`` when absent.
        now: The current time (aware UTC), to turn a date into a delay.

    Returns:
        The delay in seconds (0 for a date in the past), or ``None`` when absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no zone information
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


async def with_retries(
    call: Callable[[], Awaitable[httpx.Response]],
    *,
    attempts: int = 4,
    base: float = 0.5,
    cap: float = 8.0,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    now: Callable[[], datetime] = _utcnow,
    max_retry_after: float = 60.0,
    target: str = "http",
    retryable: Callable[[httpx.Response], bool] | None = None,
    delay_hint: Callable[[httpx.Response, datetime], float | None] | None = None,
) -> httpx.Response:
    """Make ``call`` until it settles, retrying transient failures.

    Retried: ``httpx.TransportError`` (connect, read, timeouts...), 429 and 5xx. Not retried: any
    other status. A ``Retry-After`` header on a retryable answer sets the delay; when it asks for
    more than ``max_retry_after`` seconds the answer is returned at once, so the caller (the
    outbox) can come back later instead of holding a task for that long.

    Args:
        call: Makes one request and returns its response; called up to ``attempts`` times.
        attempts: The most requests to make, at least 1.
        base: Backoff ceiling after the first failure, in seconds.
        cap: Largest backoff ceiling, in seconds.
        sleep: Awaited with each delay (``asyncio.sleep``; a recorder in tests).
        rng: Source of floats in ``[0, 1)`` for the jitter.
        now: Aware UTC clock, to read ``Retry-After`` dates.
        max_retry_after: Longest ``Retry-After`` to wait for, in seconds.
        target: Name of the integration, for log events and errors.
        retryable: Whether an answer is worth retrying (default: :func:`is_retryable_status`
            of its status); e.g. GitHub's rate-limit 403.
        delay_hint: The wait an answer asks for, in seconds, or ``None`` for backoff
            (default: its ``Retry-After`` header); e.g. GitHub's ``x-ratelimit-reset``.

    Returns:
        The final response: a success, a non-retryable error, or the last retryable error once
        the attempts are spent.

    Raises:
        IntegrationError: Every attempt failed without a response (the last transport error's
            type is the reason; its message is not kept, as it could name the URL).
        ValueError: ``attempts`` is less than 1.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        try:
            response = await call()
        except httpx.TransportError as exc:
            reason = type(exc).__name__
            if last:
                _log.warning("integration.gave_up", target=target, attempts=attempt, error=reason)
                raise IntegrationError(target, reason, attempts=attempt) from None
            delay = backoff_delay(attempt, base=base, cap=cap, rng=rng)
            _log.info(
                "integration.retry", target=target, attempt=attempt, error=reason, delay=delay
            )
            await sleep(delay)
            continue
        status = response.status_code
        worth = retryable(response) if retryable is not None else is_retryable_status(status)
        if not worth or last:
            return response
        if delay_hint is not None:
            retry_after = delay_hint(response, now())
        else:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now())
        if retry_after is not None and retry_after > max_retry_after:
            _log.warning(
                "integration.retry_after_too_long",
                target=target,
                attempt=attempt,
                status=status,
                retry_after=retry_after,
            )
            return response
        if retry_after is not None:
            delay = retry_after
        else:
            delay = backoff_delay(attempt, base=base, cap=cap, rng=rng)
        _log.info("integration.retry", target=target, attempt=attempt, status=status, delay=delay)
        await sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
