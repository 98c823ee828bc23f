"""with_retries and its parts, with scripted calls (no network) and injected time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest

from core.errors import OptimizerError
from integrations import (
    IntegrationError,
    backoff_delay,
    is_retryable_status,
    parse_retry_after,
    with_retries,
)

from .fakes import RecordingSleep

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
SECRET_URL = "https://hooks.example/services/T0SECRETAA/B0SECRETBB/xoxHookToken9f8e7d6c5b4a"


def scripted(
    *outcomes: int | Exception | httpx.Response,
) -> tuple[Callable[[], Awaitable[httpx.Response]], list[int]]:
    """A call answering each outcome in turn: a status, a response, or an exception to raise."""
    queue = list(outcomes)
    calls: list[int] = []

    async def call() -> httpx.Response:
        calls.append(len(calls) + 1)
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, int):
            return httpx.Response(outcome)
        return outcome

    return call, calls


def connect_error() -> httpx.ConnectError:
    return httpx.ConnectError(
        f"cannot reach {SECRET_URL}", request=httpx.Request("POST", SECRET_URL)
    )


def run(call: Callable[[], Awaitable[httpx.Response]], **kwargs: object) -> httpx.Response:
    return asyncio.run(with_retries(call, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1.0),
        (" 2 ", 2.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),  # IMF-fixdate
        ("Wednesday, 21-Oct-15 07:28:10 GMT", 10.0),  # RFC 850
        ("Wed Oct 21 07:28:10 2015", 10.0),  # asctime
        ("Wed, 21 Oct 2015 07:27:10 GMT", 0.0),  # already past
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retryable_statuses() -> None:
    assert [s for s in range(100, 600) if is_retryable_status(s)] == [429, *range(500, 600)]


def test_backoff_doubles_up_to_the_cap_times_the_jitter() -> None:
    ceilings = [backoff_delay(n, base=0.5, cap=8.0, rng=lambda: 1.0) for n in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff_delay(3, base=0.5, cap=8.0, rng=lambda: 0.25) == 0.5
    assert backoff_delay(3, base=0.5, cap=8.0, rng=lambda: 0.0) == 0.0
    assert backoff_delay(10_000, base=0.5, cap=8.0, rng=lambda: 1.0) == 8.0


def test_success_first_time_does_not_sleep() -> None:
    call, calls = scripted(200)
    sleep = RecordingSleep()
    assert run(call, sleep=sleep).status_code == 200
    assert calls == [1]
    assert sleep.delays == []


def test_transport_errors_are_retried_with_capped_backoff() -> None:
    call, calls = scripted(*[connect_error()] * 5, 200)
    sleep = RecordingSleep()
    response = run(call, attempts=6, base=1.0, cap=4.0, sleep=sleep, rng=lambda: 0.5)
    assert response.status_code == 200
    assert calls == [1, 2, 3, 4, 5, 6]
    assert sleep.delays == [0.5, 1.0, 2.0, 2.0, 2.0]


def test_transport_errors_to_the_end_raise_a_secret_free_error() -> None:
    call, calls = scripted(connect_error(), httpx.ReadTimeout("slow"), connect_error())
    sleep = RecordingSleep()
    with pytest.raises(IntegrationError) as info:
        run(call, attempts=3, sleep=sleep, rng=lambda: 0.5, target="slack")
    error = info.value
    assert isinstance(error, OptimizerError)
    assert (error.target, error.attempts, error.status, error.reason) == (
        "slack",
        3,
        None,
        "ConnectError",
    )
    assert str(error) == "slack: gave up after 3 attempt(s): ConnectError"
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert "SECRET" not in str(error)
    assert sleep.delays == [0.25, 0.5]
    assert calls == [1, 2, 3]


def test_other_4xx_are_returned_at_once() -> None:
    for status in (400, 401, 403, 404, 409, 410, 422):
        call, calls = scripted(status, 200)
        sleep = RecordingSleep()
        assert run(call, sleep=sleep).status_code == status
        assert calls == [1]
        assert sleep.delays == []


def test_retry_after_overrides_backoff_and_dates_use_the_clock() -> None:
    call, calls = scripted(
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}),
        httpx.Response(503, headers={"Retry-After": "whenever"}),
        200,
    )
    sleep = RecordingSleep()
    response = run(call, sleep=sleep, rng=lambda: 0.5, now=lambda: NOW)
    assert response.status_code == 200
    # 3 s as asked, 10 s until the date, then backoff (attempt 3: 0.5 * 2.0) for the unreadable one
    assert sleep.delays == [3.0, 10.0, 1.0]
    assert calls == [1, 2, 3, 4]


def test_retry_after_beyond_the_limit_returns_the_answer() -> None:
    call, calls = scripted(httpx.Response(429, headers={"Retry-After": "61"}), 200)
    sleep = RecordingSleep()
    response = run(call, sleep=sleep, max_retry_after=60.0)
    assert response.status_code == 429
    assert calls == [1]
    assert sleep.delays == []


def test_last_retryable_answer_is_returned_without_a_final_sleep() -> None:
    call, calls = scripted(502, 503, 504)
    sleep = RecordingSleep()
    response = run(call, attempts=3, sleep=sleep, rng=lambda: 0.5)
    assert response.status_code == 504
    assert calls == [1, 2, 3]
    assert sleep.delays == [0.25, 0.5]


def test_errors_that_are_not_transport_errors_propagate() -> None:
    call, calls = scripted(RuntimeError("bug"), 200)
    with pytest.raises(RuntimeError, match="bug"):
        run(call, sleep=RecordingSleep())
    assert calls == [1]


def test_attempts_must_be_positive() -> None:
    call, calls = scripted(200)
    with pytest.raises(ValueError, match="at least 1"):
        run(call, attempts=0)
    assert calls == []
