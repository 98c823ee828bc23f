"""Real local HTTP servers that speak like Slack, Jira, GitHub and Anthropic, driven by scripts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fakes import FakeAnthropic, FakeGitHub, FakeJira, FakeServer, Recorded, Reply, serving

__all__ = ["WEBHOOK_PATH", "FakeSlack", "Recorded", "Reply"]

WEBHOOK_PATH = "/services/T0SECRETAA/B0SECRETBB/xoxHookToken9f8e7d6c5b4a"


class FakeSlack(FakeServer):
    """A Slack incoming webhook: only scripted answers (418 when the script runs out)."""

    def url(self, path: str = WEBHOOK_PATH) -> str:
        return f"{self.base_url}{path}"


class OkSlack(FakeSlack):
    """A webhook that answers ``ok`` to every unscripted post."""

    def respond(self, request: Recorded) -> Reply:
        return Reply(200, "ok")


@pytest.fixture
def slack_server() -> Iterator[FakeSlack]:
    with serving(FakeSlack) as fake:
        yield fake


@pytest.fixture
def ok_slack() -> Iterator[OkSlack]:
    with serving(OkSlack) as fake:
        yield fake


@pytest.fixture
def jira_server() -> Iterator[FakeJira]:
    with serving(FakeJira) as fake:
        yield fake


@pytest.fixture
def github_server() -> Iterator[FakeGitHub]:
    with serving(FakeGitHub) as fake:
        yield fake


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropic]:
    with serving(FakeAnthropic) as fake:
        yield fake
