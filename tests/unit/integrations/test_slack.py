"""SlackWebhook against a real local HTTP server that answers like Slack."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import httpx
import pytest
from structlog.testing import capture_logs

from core.errors import ConfigurationError
from integrations import DeliveryResult, Notification, Notifier, SlackWebhook

from .conftest import WEBHOOK_PATH, FakeSlack, Reply
from .fakes import RecordingSleep, closed_port

NOTE = Notification(
    key="rollback:billing-bot:42",
    title="Canary rolled back",
    text="p95 latency 1840 ms > 1500 ms & error rate up",
    severity="critical",
    app="billing-bot",
    fields={"p95 latency": "1840 ms", "threshold": "1500 ms", "p-value": "0.003"},
    link="https://optimizer.example/deployments/42",
)

EXPECTED_PAYLOAD = {
    "text": (
        ":rotating_light: [critical] Canary rolled back: "
        "p95 latency 1840 ms &gt; 1500 ms &amp; error rate up"
    ),
    "blocks": [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": ":rotating_light: Canary rolled back",
                "emoji": True,
            },
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    "p95 latency 1840 ms &gt; 1500 ms &amp; error rate up\n"
                    "<https://optimizer.example/deployments/42|Open details>"
                ),
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*p95 latency*\n1840 ms"},
                {"type": "mrkdwn", "text": "*threshold*\n1500 ms"},
                {"type": "mrkdwn", "text": "*p-value*\n0.003"},
            ],
        },
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": "app: *billing-bot*"},
                {"type": "mrkdwn", "text": "key: `rollback:billing-bot:42`"},
            ],
        },
    ],
}

SECRET_PARTS = [part for part in WEBHOOK_PATH.split("/") if part]


def deliver(
    url: str, note: Notification = NOTE, **kwargs: object
) -> tuple[DeliveryResult, RecordingSleep]:
    sleep = RecordingSleep()

    async def run() -> DeliveryResult:
        hook = SlackWebhook(url, sleep=sleep, rng=lambda: 0.5, **kwargs)  # type: ignore[arg-type]
        try:
            return await hook.send(note)
        finally:
            await hook.close()

    return asyncio.run(run()), sleep


def assert_no_secret(text: str) -> None:
    for part in SECRET_PARTS:
        assert part not in text


def test_delivers_the_exact_block_kit_message(slack_server: FakeSlack) -> None:
    slack_server.script(Reply(200, "ok"))
    result, sleep = deliver(slack_server.url())
    assert result == DeliveryResult(ok=True, attempts=1, status=200, error=None)
    assert sleep.delays == []
    [request] = slack_server.requests
    assert request.method == "POST"
    assert request.path == WEBHOOK_PATH
    assert request.headers["content-type"] == "application/json"
    assert request.json() == EXPECTED_PAYLOAD


def test_429_waits_for_retry_after_then_delivers(slack_server: FakeSlack) -> None:
    slack_server.script(Reply(429, "rate_limited", {"Retry-After": "1"}), Reply(200, "ok"))
    result, sleep = deliver(slack_server.url())
    assert result == DeliveryResult(ok=True, attempts=2, status=200)
    assert sleep.delays == [1.0]
    assert len(slack_server.requests) == 2
    assert slack_server.requests[0].body == slack_server.requests[1].body


def test_retry_after_as_http_date_uses_the_injected_clock(slack_server: FakeSlack) -> None:
    slack_server.script(
        Reply(503, "service_unavailable", {"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}),
        Reply(200, "ok"),
    )
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    result, sleep = deliver(slack_server.url(), now=lambda: now)
    assert result.ok
    assert result.attempts == 2
    assert sleep.delays == [10.0]


def test_5xx_are_retried_with_jittered_exponential_backoff(slack_server: FakeSlack) -> None:
    slack_server.script(Reply(500, "internal_error"), Reply(502, "bad gateway"), Reply(200, "ok"))
    result, sleep = deliver(slack_server.url())
    assert result == DeliveryResult(ok=True, attempts=3, status=200)
    # rng() = 0.5 of the ceilings base * 2**(n-1) = 0.5, 1.0
    assert sleep.delays == [0.25, 0.5]
    assert len(slack_server.requests) == 3


def test_5xx_until_the_attempts_run_out_reports_the_last_answer(slack_server: FakeSlack) -> None:
    slack_server.script(*[Reply(500, "internal_error")] * 3)
    result, sleep = deliver(slack_server.url(), attempts=3)
    assert result == DeliveryResult(ok=False, attempts=3, status=500, error="internal_error")
    assert sleep.delays == [0.25, 0.5]


def test_429_asking_for_too_long_is_not_waited_for(slack_server: FakeSlack) -> None:
    slack_server.script(Reply(429, "rate_limited", {"Retry-After": "120"}))
    result, sleep = deliver(slack_server.url(), max_retry_after=60.0)
    assert result == DeliveryResult(
        ok=False, attempts=1, status=429, error="rate_limited", retry_after=120.0
    )
    assert sleep.delays == []


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "invalid_payload"),
        (403, "invalid_token"),
        (404, "no_service"),
        (410, "channel_is_archived"),
    ],
)
def test_client_errors_are_final(slack_server: FakeSlack, status: int, code: str) -> None:
    slack_server.script(Reply(status, code), Reply(200, "ok"))
    result, sleep = deliver(slack_server.url())
    assert result == DeliveryResult(ok=False, attempts=1, status=status, error=code)
    assert sleep.delays == []
    assert len(slack_server.requests) == 1


def test_connection_refused_is_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{closed_port()}{WEBHOOK_PATH}"
    with capture_logs() as logs:
        result, sleep = deliver(url, attempts=3)
    assert result == DeliveryResult(ok=False, attempts=3, status=None, error="ConnectError")
    assert sleep.delays == [0.25, 0.5]
    assert [e["event"] for e in logs] == [
        "integration.retry",
        "integration.retry",
        "integration.gave_up",
        "slack.failed",
    ]
    assert_no_secret(repr(logs))


def test_secret_stays_out_of_repr_results_and_logs(
    slack_server: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    echo = f"no_service: {WEBHOOK_PATH} ({SECRET_PARTS[-1]})"
    slack_server.script(Reply(500, "oops", {"Retry-After": "0"}), Reply(404, echo))
    caplog.set_level(logging.INFO, logger="httpx")
    sleep = RecordingSleep()

    async def run() -> tuple[str, DeliveryResult]:
        hook = SlackWebhook(slack_server.url(), sleep=sleep)
        try:
            return repr(hook), await hook.send(NOTE)
        finally:
            await hook.close()

    with capture_logs() as logs:
        text, result = asyncio.run(run())
    assert text.startswith("SlackWebhook(")
    assert "127.0.0.1" in text
    assert_no_secret(text)
    assert result.status == 404
    assert result.error is not None
    assert result.error.startswith("no_service")
    assert_no_secret(result.error)
    assert [e["event"] for e in logs] == ["integration.retry", "slack.rejected"]
    assert_no_secret(repr(logs))
    # httpx logs every request's URL at INFO: it must be masked there too.
    assert caplog.text.count("HTTP Request: POST") == 2
    assert_no_secret(caplog.text)


def test_invalid_urls_are_refused_without_repeating_them() -> None:
    for url in [
        f"http://hooks.slack.example{WEBHOOK_PATH}",
        f"ftp://hooks.slack.example{WEBHOOK_PATH}",
        f"https://{WEBHOOK_PATH}",
        f"https://hooks.slack.example:99999{WEBHOOK_PATH}",
    ]:
        with pytest.raises(ConfigurationError) as info:
            SlackWebhook(url)
        assert_no_secret(str(info.value))
        assert "hooks.slack.example" not in str(info.value)


def test_is_a_notifier_and_closes_only_its_own_client(slack_server: FakeSlack) -> None:
    async def run() -> None:
        shared = httpx.AsyncClient()
        borrowed = SlackWebhook(slack_server.url(), client=shared, name="ops")
        owned = SlackWebhook(slack_server.url())
        assert isinstance(borrowed, Notifier)
        assert borrowed.name == "ops"
        assert owned.name == "slack"
        await borrowed.close()
        await owned.close()
        await owned.close()  # idempotent
        assert not shared.is_closed
        assert owned._client.is_closed
        await shared.aclose()

    asyncio.run(run())


def test_shared_client_delivers(slack_server: FakeSlack) -> None:
    slack_server.script(Reply(200, "ok"))

    async def run() -> DeliveryResult:
        async with httpx.AsyncClient() as shared:
            return await SlackWebhook(slack_server.url(), client=shared).send(NOTE)

    assert asyncio.run(run()).ok
    assert slack_server.requests[0].json() == EXPECTED_PAYLOAD


def test_an_undecodable_answer_is_a_failure_without_retry(slack_server: FakeSlack) -> None:
    slack_server.script(Reply(200, "ok", {"Content-Encoding": "gzip"}), Reply(200, "ok"))
    result, sleep = deliver(slack_server.url())
    assert result == DeliveryResult(ok=False, attempts=1, status=None, error="DecodingError")
    assert sleep.delays == []
    assert len(slack_server.requests) == 1


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="at least 1"):
        SlackWebhook(f"https://hooks.slack.example{WEBHOOK_PATH}", attempts=0)


def test_breaker_opens_refuses_without_a_request_and_half_opens(slack_server: FakeSlack) -> None:
    from integrations import BreakerState, CircuitBreaker

    from .fakes import FakeClock

    clock = FakeClock()
    breaker = CircuitBreaker("slack", failure_threshold=2, reset_timeout=30.0, clock=clock)
    slack_server.script(
        Reply(500, "internal_error"), Reply(500, "internal_error"), Reply(200, "ok")
    )

    async def run() -> list[DeliveryResult]:
        hook = SlackWebhook(slack_server.url(), attempts=1, breaker=breaker, sleep=RecordingSleep())
        try:
            out = [await hook.send(NOTE) for _ in range(3)]
            clock.advance(30.0)
            assert breaker.state is BreakerState.HALF_OPEN
            out.append(await hook.send(NOTE))
            return out
        finally:
            await hook.close()

    results = asyncio.run(run())
    assert [(r.ok, r.status, r.error) for r in results] == [
        (False, 500, "internal_error"),
        (False, 500, "internal_error"),
        (False, None, "circuit_open"),
        (True, 200, None),
    ]
    assert results[2] == DeliveryResult(
        ok=False, attempts=0, error="circuit_open", retry_after=30.0
    )
    assert len(slack_server.requests) == 3
    assert breaker.state is BreakerState.CLOSED


def test_a_refusal_does_not_open_the_breaker(slack_server: FakeSlack) -> None:
    from integrations import BreakerState, CircuitBreaker

    breaker = CircuitBreaker("slack", failure_threshold=1)
    slack_server.script(Reply(400, "invalid_payload"))
    result, _ = deliver(slack_server.url(), breaker=breaker)
    assert result.error == "invalid_payload"
    assert breaker.state is BreakerState.CLOSED
