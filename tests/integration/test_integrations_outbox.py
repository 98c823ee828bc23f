"""The integrations service over the real PostgreSQL outbox and local Slack/Jira servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.app_config import TaskConfig
from core.settings import IntegrationSettings, RouteRule, Settings, updated
from integrations.outbox import outbox_key
from orchestrator.service import HealthStatus
from orchestrator.services.integrations import IntegrationsService, SqlOutboxStore
from rollout.config_manager import ConfigManager
from storage.database import create_db_engine
from storage.outbox import enqueue, find_outbox, list_outbox
from tests.unit.integrations.conftest import OkSlack
from tests.unit.integrations.fakes import (
    GITHUB_REPO,
    GITHUB_TOKEN,
    JIRA_EMAIL,
    JIRA_PROJECT,
    JIRA_TOKEN,
    FakeGitHub,
    FakeJira,
    Reply,
    serving,
)

pytestmark = pytest.mark.integration

DECISION = {
    "id": "dec-42",
    "app": "billing-bot",
    "task": "classify",
    "strategy": "model_selection",
    "action": {"model": "claude-haiku-4-5"},
    "rationale": "cheaper, quality within tolerance",
    "status": "proposed",
}


@pytest.fixture
def engine(fresh_database: Callable[[], str]) -> Iterator[Engine]:
    engine = create_db_engine(fresh_database())
    yield engine
    engine.dispose()


def add(engine: Engine, event_type: str, subject: str, payload: dict[str, object]) -> str:
    key = outbox_key(event_type, subject)
    with Session(engine) as session:
        enqueue(
            session,
            key=key,
            event_type=event_type,
            payload=payload,
            now=datetime.now(UTC) - timedelta(seconds=1),
            app="billing-bot",
        )
        session.commit()
    return key


def rows(engine: Engine) -> dict[str, object]:
    with Session(engine) as session:
        return {e.key: e for e in list_outbox(session)}


def test_service_delivers_the_outbox_and_reports_health(engine: Engine) -> None:
    with serving(OkSlack) as slack, serving(FakeJira) as jira:
        settings = Settings().with_overrides(
            integrations=updated(
                IntegrationSettings(),
                slack__webhook_url=slack.url(),
                jira__base_url=jira.base_url,
                jira__email=JIRA_EMAIL,
                jira__api_token=JIRA_TOKEN,
                jira__project=JIRA_PROJECT,
                poll_interval=timedelta(milliseconds=50),
                retry_attempts=1,
                outbox_retry_interval=timedelta(milliseconds=100),
                routes=(
                    RouteRule(targets=("slack",), events=("rollback",)),
                    RouteRule(targets=("jira",), events=("approval_needed", "decision_approved")),
                ),
            )
        )
        jira.script(Reply(503, "Service Unavailable"))  # the first issue attempt fails
        rollback = add(engine, "rollback", "dec-41", {"decision": {**DECISION, "id": "dec-41"}})
        approval = add(engine, "approval_needed", "dec-42", {"decision": DECISION})
        approved = add(
            engine, "decision_approved", "dec-42", {"decision": DECISION, "actor": "ops@acme"}
        )

        async def run() -> tuple[HealthStatus, dict[str, str]]:
            service = IntegrationsService(settings, engine=engine)
            await service.start()
            try:
                for _ in range(200):
                    done = rows(engine)
                    if all(e.status == "delivered" for e in done.values()):  # type: ignore[attr-defined]
                        break
                    await asyncio.sleep(0.05)
                health = await service.health_check()
                return health.status, dict(health.checks)
            finally:
                await service.stop()

        status, checks = asyncio.run(run())
        done = rows(engine)
        assert {k: e.status for k, e in done.items()} == {  # type: ignore[attr-defined]
            rollback: "delivered",
            approval: "delivered",
            approved: "delivered",
        }
        assert done[approval].attempts == 2  # type: ignore[attr-defined]
        assert done[approval].result["targets"]["jira"]["issue"] == "OPS-1"  # type: ignore[attr-defined]
        assert done[approved].result["targets"]["jira"]["issue"] == "OPS-1"  # type: ignore[attr-defined]
        assert len(jira.comments["OPS-1"]) == 1
        assert len(slack.requests) == 1
        assert status is HealthStatus.HEALTHY
        assert checks == {
            "breaker.slack": "closed",
            "breaker.jira": "closed",
            "outbox.pending": "0",
            "outbox.failed": "0",
            "outbox.due": "0",
            "outbox.parked": "0",
        }


def test_a_claimed_row_is_not_claimed_twice_and_release_gives_it_back(engine: Engine) -> None:
    key = add(engine, "rollback", "dec-1", {"decision": DECISION})
    store = SqlOutboxStore(engine)
    now = datetime.now(UTC)
    first = store.claim(now)
    assert first is not None
    assert first.entry.key == key
    assert store.claim(now) is None  # locked: SKIP LOCKED
    store.release(first)
    again = store.claim(now)
    assert again is not None
    store.failed(
        again,
        error="slack: boom",
        next_attempt_at=now + timedelta(minutes=1),
        result={"targets": {"slack": {"ok": False}}},
    )
    assert store.claim(now) is None  # not due
    assert store.backlog(now) == {"pending": 0, "failed": 1, "due": 0, "parked": 0}
    found = store.find(key)
    assert found is not None
    assert (found.attempts, found.result) == (1, {"targets": {"slack": {"ok": False}}})
    assert store.find("nope") is None


def test_every_config_version_becomes_a_commit_in_the_gitops_repository(engine: Engine) -> None:
    """ConfigManager queues each version with the change; the service commits them in order."""
    manager = ConfigManager(engine)
    manager.update("shop", {"faq": TaskConfig(model="big")}, author="alice", reason="first")
    manager.update("shop", {"faq": TaskConfig(model="small")}, author="canary", reason="promoted")
    manager.rollback_to("shop", 1, author="rollback-engine", reason="quality fell")
    with serving(FakeGitHub) as github:
        settings = Settings().with_overrides(
            integrations=updated(
                IntegrationSettings(),
                github__token=GITHUB_TOKEN,
                github__repo=GITHUB_REPO,
                github__api_url=github.base_url,
                github__config_path="llmopt/configs",
                github__branch="gitops",
                poll_interval=timedelta(milliseconds=50),
                retry_attempts=1,
            )
        )

        async def run() -> None:
            service = IntegrationsService(settings, engine=engine)
            await service.start()
            try:
                for _ in range(400):
                    if all(e.status == "delivered" for e in rows(engine).values()):  # type: ignore[attr-defined]
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError(f"not delivered: {rows(engine)}")
            finally:
                await service.stop()

        asyncio.run(run())
        files = dict(github.files)
        messages = [r.json()["message"] for r in github.requests if r.method == "PUT"]
    assert sorted(rows(engine)) == ["config:shop:v1", "config:shop:v2", "config:shop:v3"]
    assert json.loads(files["llmopt/configs/shop.json"]) == {
        "app": "shop",
        "version": 3,
        "tasks": {"faq": {**msgspec.to_builtins(TaskConfig(model="big"))}},
    }
    assert messages == [
        "llmopt: shop config v1 by alice: first",
        "llmopt: shop config v2 by canary: promoted",
        "llmopt: shop config v3 by rollback-engine: quality fell",
    ]


def test_long_keys_stay_apart_and_are_found(engine: Engine) -> None:
    """App names run to 255 characters: two apps sharing a 200-character start are two rows."""
    first, second = "a" * 250 + "-one", "a" * 250 + "-two"
    manager = ConfigManager(engine)
    for app in (first, second, first):
        manager.update(app, {"faq": TaskConfig(model="big")}, author="alice", reason="x")
    stored = rows(engine)
    assert len(stored) == 3
    assert all(len(key) <= 200 for key in stored)
    with Session(engine) as session:
        found = find_outbox(session, f"config:{second}:v1")
        again = find_outbox(session, f"config:{first}:v2")
    assert found is not None
    assert found.payload["config"]["app"] == second
    assert again is not None
    assert again.payload["config"]["version"] == 2
