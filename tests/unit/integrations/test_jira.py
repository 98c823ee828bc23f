"""JiraClient against a local server that answers like Jira Cloud REST v3."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from structlog.testing import capture_logs

from core.errors import ConfigurationError
from integrations import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    IntegrationError,
    IssueRef,
    IssueTracker,
    JiraClient,
    Notification,
    build_adf,
    issue_label,
)

from .fakes import (
    JIRA_EMAIL,
    JIRA_PROJECT,
    JIRA_TOKEN,
    FakeClock,
    FakeJira,
    RecordingSleep,
    Reply,
    assert_no_secret,
    closed_port,
    json_reply,
    options,
)

T = TypeVar("T")

NOTE = Notification(
    key="approval_needed:dec-7",
    title="Approve: billing-bot/classify → claude-haiku-4-5",
    text="Quality 0.91 vs 0.92 (tolerance 0.02).\nCost -62 %.",
    severity="warning",
    app="billing-bot",
    fields={"cost change": "-62 %", "p-value": "0.41"},
    link="https://optimizer.example/api/v1/optimize/dec-7",
)


def run(
    server: FakeJira,
    action: Callable[[JiraClient], Awaitable[T]],
    sleep: RecordingSleep | None = None,
    **kwargs: Any,
) -> T:
    async def go() -> T:
        client = JiraClient(
            server.base_url,
            JIRA_EMAIL,
            JIRA_TOKEN,
            JIRA_PROJECT,
            options=options(sleep or RecordingSleep(), **kwargs),
        )
        try:
            return await action(client)
        finally:
            await client.close()

    return asyncio.run(go())


def test_creates_an_issue_with_an_adf_description(jira_server: FakeJira) -> None:
    ref = run(jira_server, lambda c: c.create_issue("Hello\nworld", build_adf(NOTE)))
    assert ref == IssueRef(target="jira", key="OPS-1", url=f"{jira_server.base_url}/browse/OPS-1")
    [request] = jira_server.requests
    assert request.method == "POST"
    assert request.route == "/rest/api/3/issue"
    assert request.headers["accept"] == "application/json"
    assert request.json() == {
        "fields": {
            "project": {"key": "OPS"},
            "summary": "Hello world",
            "issuetype": {"name": "Task"},
            "description": build_adf(NOTE),
        }
    }


def test_adf_document_shape() -> None:
    assert build_adf(NOTE) == {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [{"type": "text", "text": "Quality 0.91 vs 0.92 (tolerance 0.02)."}],
            },
            {"type": "paragraph", "content": [{"type": "text", "text": "Cost -62 %."}]},
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    {
                                        "type": "text",
                                        "text": "cost change: ",
                                        "marks": [{"type": "strong"}],
                                    },
                                    {"type": "text", "text": "-62 %"},
                                ],
                            }
                        ],
                    },
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    {
                                        "type": "text",
                                        "text": "p-value: ",
                                        "marks": [{"type": "strong"}],
                                    },
                                    {"type": "text", "text": "0.41"},
                                ],
                            }
                        ],
                    },
                ],
            },
            {
                "type": "paragraph",
                "content": [
                    {
                        "type": "text",
                        "text": "Open details",
                        "marks": [{"type": "link", "attrs": {"href": NOTE.link}}],
                    }
                ],
            },
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "severity: warning · app: billing-bot · key: "},
                    {"type": "text", "text": "approval_needed:dec-7", "marks": [{"type": "code"}]},
                ],
            },
        ],
    }


def test_open_issue_is_idempotent_by_key_and_comment_lands(jira_server: FakeJira) -> None:
    async def action(client: JiraClient) -> tuple[IssueRef, IssueRef, str]:
        assert isinstance(client, IssueTracker)
        first = await client.open_issue(NOTE)
        again = await client.open_issue(NOTE)  # a retried delivery finds it
        comment = await client.comment(first.key, NOTE)
        return first, again, comment

    first, again, comment = run(jira_server, action)
    assert first == again
    assert list(jira_server.issues) == ["OPS-1"]
    assert jira_server.issues["OPS-1"]["labels"] == ["llmopt", issue_label(NOTE.key)]
    [stored] = jira_server.comments["OPS-1"]
    assert stored["id"] == comment
    assert stored["body"]["content"][0] == {
        "type": "paragraph",
        "content": [{"type": "text", "text": NOTE.title, "marks": [{"type": "strong"}]}],
    }


def test_400_error_body_is_surfaced_and_not_retried(jira_server: FakeJira) -> None:
    sleep = RecordingSleep()
    with pytest.raises(IntegrationError) as info:
        run(jira_server, lambda c: c.create_issue("", build_adf(NOTE)), sleep)
    error = info.value
    assert (error.status, error.attempts, error.transient) == (400, 1, False)
    assert error.reason == "summary: You must specify a summary of the issue."
    assert str(error) == (
        "jira: HTTP 400 after 1 attempt(s): summary: You must specify a summary of the issue."
    )
    assert sleep.delays == []


def test_404_error_messages_are_surfaced(jira_server: FakeJira) -> None:
    with pytest.raises(IntegrationError) as info:
        run(jira_server, lambda c: c.add_comment("OPS-99", build_adf(NOTE)))
    assert info.value.status == 404
    assert info.value.reason == "Issue does not exist or you do not have permission to see it."


def test_429_honours_retry_after(jira_server: FakeJira) -> None:
    jira_server.script(
        json_reply(429, {"errorMessages": ["Rate limit exceeded."]}, {"Retry-After": "7"})
    )
    sleep = RecordingSleep()
    ref = run(jira_server, lambda c: c.create_issue("t", build_adf(NOTE)), sleep)
    assert ref.key == "OPS-1"
    assert sleep.delays == [7.0]
    assert len(jira_server.requests) == 2


def test_5xx_are_retried_then_succeed(jira_server: FakeJira) -> None:
    jira_server.script(Reply(500, "Internal Server Error"), Reply(503, "Service Unavailable"))
    sleep = RecordingSleep()
    ref = run(jira_server, lambda c: c.create_issue("t", build_adf(NOTE)), sleep)
    assert ref.key == "OPS-1"
    assert sleep.delays == [0.25, 0.5]


def test_retry_after_beyond_the_limit_is_reported_for_the_outbox(jira_server: FakeJira) -> None:
    jira_server.script(
        json_reply(429, {"errorMessages": ["Rate limit exceeded."]}, {"Retry-After": "600"})
    )
    with pytest.raises(IntegrationError) as info:
        run(jira_server, lambda c: c.create_issue("t", build_adf(NOTE)))
    assert (info.value.status, info.value.retry_after, info.value.transient) == (429, 600.0, True)
    assert info.value.reason == "Rate limit exceeded."


def test_breaker_opens_after_failures_and_half_opens(jira_server: FakeJira) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("jira", failure_threshold=2, reset_timeout=30.0, clock=clock)
    jira_server.script(*[Reply(502, "Bad Gateway")] * 4)

    async def action(client: JiraClient) -> list[str]:
        seen = []
        for _ in range(3):
            try:
                await client.create_issue("t", build_adf(NOTE))
            except CircuitOpenError as exc:
                seen.append(f"open {exc.retry_after}")
            except IntegrationError as exc:
                seen.append(f"{exc.status}")
        clock.advance(30.0)
        assert breaker.state is BreakerState.HALF_OPEN
        ref = await client.create_issue("t", build_adf(NOTE))  # the probe
        seen.append(ref.key)
        return seen

    seen = run(jira_server, action, breaker=breaker, attempts=2)
    assert seen == ["502", "502", "open 30.0", "OPS-1"]
    assert len(jira_server.requests) == 5  # 2 + 2 + none while open + the probe
    assert breaker.state is BreakerState.CLOSED


def test_4xx_does_not_open_the_breaker(jira_server: FakeJira) -> None:
    breaker = CircuitBreaker("jira", failure_threshold=1)

    async def action(client: JiraClient) -> None:
        for _ in range(3):
            with pytest.raises(IntegrationError):
                await client.create_issue("", build_adf(NOTE))

    run(jira_server, action, breaker=breaker)
    assert breaker.state is BreakerState.CLOSED


def test_secrets_stay_out_of_repr_errors_and_logs(
    jira_server: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    jira_server.script(
        Reply(500, f"proxy error for {JIRA_TOKEN}", {"Retry-After": "0"}),
        json_reply(400, {"errorMessages": [f"bad token {JIRA_TOKEN}"], "errors": {}}),
    )
    caplog.set_level(logging.DEBUG)

    async def action(client: JiraClient) -> tuple[str, str]:
        try:
            await client.create_issue("t", build_adf(NOTE))
        except IntegrationError as exc:
            return repr(client), f"{exc} {exc!r} {exc.reason}"
        raise AssertionError("no error")

    with capture_logs() as logs:
        text, error = run(jira_server, action)
    assert text == f"JiraClient(base_url={jira_server.base_url!r}, project='OPS')"
    assert error.count("bad token ***") == 3
    for blob in (text, error, repr(logs), caplog.text):
        assert_no_secret(blob, JIRA_TOKEN)


def test_wrong_token_is_401_without_echo(jira_server: FakeJira) -> None:
    async def go() -> None:
        client = JiraClient(jira_server.base_url, JIRA_EMAIL, "wrong-token-value", "OPS")
        try:
            await client.create_issue("t", build_adf(NOTE))
        finally:
            await client.close()

    with pytest.raises(IntegrationError) as info:
        asyncio.run(go())
    assert info.value.status == 401
    assert info.value.reason == "Client must be authenticated to access this resource."


def test_no_answer_is_retried_then_a_transient_error() -> None:
    sleep = RecordingSleep()

    async def go() -> None:
        client = JiraClient(
            f"http://127.0.0.1:{closed_port()}",
            JIRA_EMAIL,
            JIRA_TOKEN,
            "OPS",
            options=options(sleep, attempts=3),
        )
        try:
            await client.create_issue("t", build_adf(NOTE))
        finally:
            await client.close()

    with pytest.raises(IntegrationError) as info:
        asyncio.run(go())
    assert (info.value.status, info.value.reason, info.value.transient) == (
        None,
        "ConnectError",
        True,
    )
    assert sleep.delays == [0.25, 0.5]


@pytest.mark.parametrize(
    ("url", "email", "token", "project"),
    [
        ("http://jira.example", JIRA_EMAIL, JIRA_TOKEN, "OPS"),
        ("https://jira.example", "", JIRA_TOKEN, "OPS"),
        ("https://jira.example", JIRA_EMAIL, "", "OPS"),
        ("https://jira.example", JIRA_EMAIL, JIRA_TOKEN, "ops project"),
    ],
)
def test_bad_configuration_is_refused_without_the_token(
    url: str, email: str, token: str, project: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        JiraClient(url, email, token, project)
    assert_no_secret(str(info.value), JIRA_TOKEN)
