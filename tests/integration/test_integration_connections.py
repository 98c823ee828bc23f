"""Connections made through the API reach the integrations service without a restart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from core.settings import IntegrationSettings, RouteRule, Settings, updated
from orchestrator.services.connections import with_connections
from orchestrator.services.integrations import IntegrationsService
from storage.database import create_db_engine, session_scope
from storage.models import IntegrationRow
from storage.outbox import enqueue, list_outbox
from tests.unit.integrations.conftest import OkSlack
from tests.unit.integrations.fakes import serving

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(fresh_database: Callable[[], str]) -> Iterator[Engine]:
    engine = create_db_engine(fresh_database())
    yield engine
    engine.dispose()


def _connect(engine: Engine, kind: str, secret: str, config: dict[str, str]) -> None:
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        s.add(
            IntegrationRow(
                id=str(uuid.uuid4()),
                name=f"{kind}-{uuid.uuid4().hex[:6]}",
                kind=kind,
                config=config,
                secret=secret,
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )


def test_a_slack_connection_made_while_running_delivers_the_next_rollback(engine: Engine) -> None:
    settings = Settings(
        integrations=IntegrationSettings(
            poll_interval=timedelta(milliseconds=50),
            routes=(RouteRule(targets=("slack",), events=("rollback",)),),
        )
    )
    with serving(OkSlack) as slack:

        async def run() -> None:
            service = IntegrationsService(settings, engine=engine)
            await service.start()
            try:
                assert service.clients.targets == frozenset()
                await asyncio.to_thread(_connect, engine, "slack", slack.url(), {})
                for _ in range(100):
                    if "slack" in service.clients.targets:
                        break
                    await asyncio.sleep(0.05)
                with session_scope(engine) as s:
                    enqueue(
                        s,
                        key="rollback:dep-1",
                        event_type="rollback",
                        app="shop",
                        payload={
                            "deployment_id": "dep-1",
                            "app": "shop",
                            "task": "classify",
                            "reason": "verdict fail at 1%: quality",
                        },
                        now=datetime.now(UTC) - timedelta(seconds=1),
                    )
                for _ in range(200):
                    if slack.requests:
                        return
                    await asyncio.sleep(0.05)
            finally:
                await service.stop()

        asyncio.run(run())
    assert len(slack.requests) == 1
    with session_scope(engine) as s:
        (entry,) = list_outbox(s)
    assert entry.status == "delivered"
    assert entry.result["targets"]["slack"]["ok"] is True


def test_settings_win_over_connections_and_empty_kinds_are_filled() -> None:
    configured = updated(
        IntegrationSettings(), slack__webhook_url="https://hooks.slack.com/services/T/B/settings"
    )
    merged = with_connections(
        configured,
        [
            ("slack", "https://hooks.slack.com/services/T/B/api", {}),
            ("github", "ghp_token", {"repo": "acme/ops"}),
            (
                "jira",
                "jira-token",
                {"base_url": "https://acme.atlassian.net", "email": "a@acme.io", "project": "OPS"},
            ),
            ("github", "ghp_older", {"repo": "acme/old"}),
        ],
    )
    assert merged.slack.webhook_url.endswith("/settings")
    assert (merged.github.token, merged.github.repo) == ("ghp_token", "acme/ops")
    assert (merged.jira.base_url, merged.jira.project, merged.jira.api_token) == (
        "https://acme.atlassian.net",
        "OPS",
        "jira-token",
    )
    assert merged.anthropic.api_key == ""
