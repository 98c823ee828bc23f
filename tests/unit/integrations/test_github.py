"""GitHubClient against a local server that answers like the GitHub REST API."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from structlog.testing import capture_logs

from core.errors import ConfigurationError
from integrations import (
    BreakerState,
    CircuitBreaker,
    FileCommit,
    GitHubClient,
    IntegrationError,
    IssueRef,
    Notification,
    build_markdown,
    issue_label,
)

from .fakes import (
    GITHUB_REPO,
    GITHUB_TOKEN,
    FakeClock,
    FakeGitHub,
    RecordingSleep,
    Reply,
    assert_no_secret,
    git_blob_sha,
    json_reply,
    options,
)

T = TypeVar("T")
NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
NOTE = Notification(
    key="approval_needed:dec-9",
    title="Approve: support-bot/summarise → cache",
    text="Repeat ratio 0.41.",
    severity="warning",
    app="support-bot",
    fields={"hit rate": "0.38", "a|b": "1"},
    link="https://optimizer.example/api/v1/optimize/dec-9",
)


def run(
    server: FakeGitHub,
    action: Callable[[GitHubClient], Awaitable[T]],
    sleep: RecordingSleep | None = None,
    **kwargs: Any,
) -> T:
    async def go() -> T:
        client = GitHubClient(
            GITHUB_TOKEN,
            GITHUB_REPO,
            base_url=server.base_url,
            options=options(sleep or RecordingSleep(), now=lambda: NOW, **kwargs),
        )
        try:
            return await action(client)
        finally:
            await client.close()

    return asyncio.run(go())


def test_creates_an_issue_with_the_api_headers(github_server: FakeGitHub) -> None:
    ref = run(github_server, lambda c: c.create_issue("Title", "body", labels=("x",)))
    assert ref == IssueRef(
        target="github", key="1", url=f"https://github.com/{GITHUB_REPO}/issues/1"
    )
    [request] = github_server.requests
    assert (request.method, request.route) == ("POST", f"/repos/{GITHUB_REPO}/issues")
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    assert request.json() == {"title": "Title", "body": "body", "labels": ["x"]}


def test_markdown_body() -> None:
    assert build_markdown(NOTE) == (
        "⚠️ **warning**\n\nRepeat ratio 0.41.\n\n| metric | value |\n|---|---|\n"
        "| hit rate | 0.38 |\n| a\\|b | 1 |\n\n"
        "[Open details](https://optimizer.example/api/v1/optimize/dec-9)\n\n"
        "<sub>app: `support-bot` · key: `approval_needed:dec-9`</sub>"
    )


def test_open_issue_is_idempotent_and_comments(github_server: FakeGitHub) -> None:
    async def action(client: GitHubClient) -> tuple[IssueRef, IssueRef, str]:
        first = await client.open_issue(NOTE)
        return first, await client.open_issue(NOTE), await client.comment(first.key, NOTE)

    first, again, comment = run(github_server, action)
    assert first == again
    assert len(github_server.issues) == 1
    assert [x["name"] for x in github_server.issues[0]["labels"]] == [
        "llmopt",
        issue_label(NOTE.key),
    ]
    [stored] = github_server.comments[1]
    assert str(stored["id"]) == comment
    assert stored["body"] == f"### {NOTE.title}\n\n{build_markdown(NOTE)}"


def test_422_validation_errors_are_surfaced(github_server: FakeGitHub) -> None:
    with pytest.raises(IntegrationError) as info:
        run(github_server, lambda c: c.create_issue("", "body"))
    assert (info.value.status, info.value.attempts) == (422, 1)
    assert info.value.reason == "Validation Failed; Issue title missing_field"


def test_403_without_rate_limit_is_final(github_server: FakeGitHub) -> None:
    github_server.script(json_reply(403, {"message": "Resource not accessible by integration"}))
    sleep = RecordingSleep()
    with pytest.raises(IntegrationError) as info:
        run(github_server, lambda c: c.create_issue("t", "b"), sleep)
    assert (info.value.status, info.value.reason) == (403, "Resource not accessible by integration")
    assert sleep.delays == []


def test_primary_rate_limit_waits_until_reset(github_server: FakeGitHub) -> None:
    reset = int(NOW.timestamp()) + 12
    github_server.script(
        json_reply(
            403,
            {"message": "API rate limit exceeded for user ID 1."},
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        )
    )
    sleep = RecordingSleep()
    ref = run(github_server, lambda c: c.create_issue("t", "b"), sleep)
    assert ref.key == "1"
    assert sleep.delays == [12.0]


def test_secondary_rate_limit_honours_retry_after(github_server: FakeGitHub) -> None:
    github_server.script(
        json_reply(
            429, {"message": "You have exceeded a secondary rate limit."}, {"retry-after": "5"}
        ),
        json_reply(403, {"message": "You have exceeded a secondary rate limit."}),
    )
    sleep = RecordingSleep()
    ref = run(github_server, lambda c: c.create_issue("t", "b"), sleep)
    assert ref.key == "1"
    assert sleep.delays == [5.0, 60.0]  # without headers: wait a minute


def test_rate_limit_reset_beyond_the_limit_goes_back_to_the_outbox(
    github_server: FakeGitHub,
) -> None:
    reset = int(NOW.timestamp()) + 1800
    github_server.script(
        json_reply(
            403,
            {"message": "API rate limit exceeded"},
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        )
    )
    with pytest.raises(IntegrationError) as info:
        run(github_server, lambda c: c.create_issue("t", "b"))
    assert (info.value.status, info.value.retry_after, info.value.transient) == (403, 1800.0, True)
    assert info.value.reason == "API rate limit exceeded"


def test_5xx_are_retried_then_succeed(github_server: FakeGitHub) -> None:
    github_server.script(Reply(502, "Bad Gateway"), json_reply(503, {"message": "Unavailable"}))
    sleep = RecordingSleep()
    assert run(github_server, lambda c: c.create_issue("t", "b"), sleep).key == "1"
    assert sleep.delays == [0.25, 0.5]


def test_put_file_creates_then_updates_with_the_sha(github_server: FakeGitHub) -> None:
    async def action(client: GitHubClient) -> tuple[FileCommit, FileCommit]:
        first = await client.put_file("config/billing-bot.json", '{"v": 1}', "v1")
        second = await client.put_file("config/billing-bot.json", b'{"v": 2}', "v2", branch="main")
        return first, second

    first, second = run(github_server, action)
    assert first.created
    assert not second.created
    assert first.sha == git_blob_sha(b'{"v": 1}')
    assert second.sha == git_blob_sha(b'{"v": 2}')
    assert second.path == "config/billing-bot.json"
    assert github_server.files == {"config/billing-bot.json": b'{"v": 2}'}
    puts = [r for r in github_server.requests if r.method == "PUT"]
    assert puts[0].json() == {"message": "v1", "content": base64.b64encode(b'{"v": 1}').decode()}
    assert puts[1].json() == {
        "message": "v2",
        "content": base64.b64encode(b'{"v": 2}').decode(),
        "sha": first.sha,
        "branch": "main",
    }
    assert github_server.requests[2].query == {"ref": "main"}


def test_put_file_conflict_is_surfaced(github_server: FakeGitHub) -> None:
    github_server.files["c.json"] = b"old"
    github_server.script(json_reply(200, {"type": "file", "sha": "0" * 40}))  # a stale read
    with pytest.raises(IntegrationError) as info:
        run(github_server, lambda c: c.put_file("c.json", "new", "m"))
    assert info.value.status == 409
    assert info.value.reason == f"c.json does not match {'0' * 40}"


def test_breaker_opens_and_half_opens(github_server: FakeGitHub) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("github", failure_threshold=1, reset_timeout=10.0, clock=clock)
    github_server.script(Reply(500, "boom"))

    async def action(client: GitHubClient) -> str:
        with pytest.raises(IntegrationError):
            await client.create_issue("t", "b")
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(IntegrationError, match="circuit_open"):
            await client.create_issue("t", "b")
        clock.advance(10.0)
        return (await client.create_issue("t", "b")).key

    assert run(github_server, action, breaker=breaker, attempts=1) == "1"
    assert len(github_server.requests) == 2
    assert breaker.state is BreakerState.CLOSED


def test_token_stays_out_of_repr_errors_and_logs(
    github_server: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    github_server.script(json_reply(401, {"message": f"Bad credentials: {GITHUB_TOKEN}"}))
    caplog.set_level(logging.DEBUG)

    async def action(client: GitHubClient) -> str:
        try:
            await client.create_issue("t", "b")
        except IntegrationError as exc:
            return f"{client!r} {exc} {exc!r}"
        raise AssertionError("no error")

    with capture_logs() as logs:
        text = run(github_server, action)
    assert "Bad credentials: ***" in text
    for blob in (text, repr(logs), caplog.text):
        assert_no_secret(blob, GITHUB_TOKEN)


@pytest.mark.parametrize(("token", "repo"), [("", GITHUB_REPO), (GITHUB_TOKEN, "no-slash")])
def test_bad_configuration_is_refused(token: str, repo: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        GitHubClient(token, repo)
    assert_no_secret(str(info.value), GITHUB_TOKEN)
