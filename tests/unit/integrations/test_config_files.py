"""Config as files: ``config_changed`` rows committed to a (local, fake) GitHub repository."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from core.app_config import CONFIG_CHANGED
from core.settings import DEFAULT_ROUTES
from integrations import GitHubClient
from integrations.config_files import ConfigFiles
from integrations.dispatcher import Dispatcher, DispatchReport
from integrations.routing import Router

from .conftest import OkSlack
from .fakes import GITHUB_REPO, GITHUB_TOKEN, FakeGitHub, RecordingSleep, Reply, options
from .memory_outbox import MemoryOutbox

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def change(app: str, version: int, model: str, reason: str = "promoted") -> dict[str, Any]:
    return {
        "config": {"app": app, "version": version, "tasks": {"faq": {"model": model}}},
        "author": "canary-controller",
        "reason": reason,
        "decision_key": None,
    }


def dispatch(outbox: MemoryOutbox, github: FakeGitHub, *, files: bool = True) -> DispatchReport:
    async def go() -> DispatchReport:
        client = GitHubClient(
            GITHUB_TOKEN,
            GITHUB_REPO,
            base_url=github.base_url,
            options=options(RecordingSleep(), attempts=2),
        )
        dispatcher = Dispatcher(
            outbox,
            Router(DEFAULT_ROUTES, {"github"}),
            trackers={"github": client},
            config_files=ConfigFiles(client, "configs/", "gitops") if files else None,
            now=lambda: NOW,
            rng=lambda: 0.5,
        )
        try:
            return await dispatcher.run_once(limit=10)
        finally:
            await client.close()

    return asyncio.run(go())


def test_each_version_is_a_commit_of_the_app_file(
    github_server: FakeGitHub, ok_slack: OkSlack
) -> None:
    outbox = MemoryOutbox()
    for version, model in ((1, "big"), (2, "small")):
        outbox.enqueue(
            f"config:shop:v{version}", CONFIG_CHANGED, change("shop", version, model), NOW
        )
    assert dispatch(outbox, github_server) == DispatchReport(delivered=2)
    stored = json.loads(github_server.files["configs/shop.json"])
    assert stored == {"app": "shop", "version": 2, "tasks": {"faq": {"model": "small"}}}
    puts = [r.json() for r in github_server.requests if r.method == "PUT"]
    assert [p["message"] for p in puts] == [
        "llmopt: shop config v1 by canary-controller: promoted",
        "llmopt: shop config v2 by canary-controller: promoted",
    ]
    assert {p["branch"] for p in puts} == {"gitops"}
    assert "sha" in puts[1]  # an update of the file v1 created
    row = outbox.by_key("config:shop:v2")
    assert row.result["targets"]["github_files"]["path"] == "configs/shop.json"
    assert row.result["routed"] == ["github_files"]  # routes do not apply; no issue opened
    assert github_server.issues == []
    assert ok_slack.requests == []


def test_a_version_retried_after_a_newer_one_never_moves_the_file_back(
    github_server: FakeGitHub,
) -> None:
    outbox = MemoryOutbox()
    github_server.script(Reply(503, "unavailable"), Reply(503, "unavailable"))  # v1: both tries
    outbox.enqueue("config:shop:v1", CONFIG_CHANGED, change("shop", 1, "big"), NOW)
    outbox.enqueue("config:shop:v2", CONFIG_CHANGED, change("shop", 2, "small"), NOW)
    assert dispatch(outbox, github_server) == DispatchReport(delivered=1, failed=1)
    first = outbox.by_key("config:shop:v1")
    outbox.rows[first.id] = replace(first, next_attempt_at=NOW)  # due again
    assert dispatch(outbox, github_server) == DispatchReport(delivered=1)
    assert json.loads(github_server.files["configs/shop.json"])["version"] == 2
    skipped = outbox.by_key("config:shop:v1").result["targets"]["github_files"]
    assert skipped["skipped"] == "repository as new"
    assert len([r for r in github_server.requests if r.method == "PUT"]) == 1


def test_without_a_config_path_rows_are_delivered_with_nothing_sent(
    github_server: FakeGitHub,
) -> None:
    outbox = MemoryOutbox()
    outbox.enqueue("config:shop:v1", CONFIG_CHANGED, change("shop", 1, "big"), NOW)
    assert dispatch(outbox, github_server, files=False) == DispatchReport(delivered=1)
    assert github_server.requests == []
    assert outbox.by_key("config:shop:v1").result["routed"] == []


def test_an_unsafe_app_name_is_parked_not_written(github_server: FakeGitHub) -> None:
    outbox = MemoryOutbox()
    outbox.enqueue("config:x:v1", CONFIG_CHANGED, change("../../etc", 1, "big"), NOW)
    assert dispatch(outbox, github_server) == DispatchReport(parked=1)
    row = outbox.by_key("config:x:v1")
    assert "is not a safe file name" in (row.last_error or "")
    assert github_server.requests == []
