"""From a bad canary in the real dataflow to a rollback and a Slack message, end to end.

The dataflow runs in-process over recorded telemetry (baseline and canary variants) with the
real actuator on PostgreSQL; the integrations service then delivers the outbox to a local
server that answers like a Slack incoming webhook.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from bytewax.testing import TestingSink, TestingSource, run_main
from sqlalchemy import Engine

from core.app_config import TaskConfig
from core.decisions import Decision, ExpectedImpact, stable_id
from core.settings import (
    CanarySettings,
    IntegrationSettings,
    RouteRule,
    Settings,
    StorageSettings,
    updated,
)
from flows.kafka_batches import RecordBatch
from flows.pipeline import FlowIO, build_flow
from orchestrator.services.integrations import IntegrationsService
from rollout.canary_controller import start_canary
from rollout.config_manager import ConfigManager
from storage.database import create_db_engine, session_scope
from storage.decisions import get_deployment
from storage.outbox import list_outbox
from tests.unit.integrations.conftest import OkSlack
from tests.unit.integrations.fakes import serving

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def database(fresh_database: Callable[[], str]) -> Iterator[tuple[str, Engine]]:
    url = fresh_database()
    engine = create_db_engine(url)
    yield url, engine
    engine.dispose()


def _telemetry(minutes: int) -> list[bytes]:
    """Per minute 200 baseline calls (quality ~0.9) and 100 canary calls (quality ~0.6)."""
    rng = random.Random(5)
    out = []
    for i in range(minutes * 300):
        canary = i % 3 == 0
        at = T0 + timedelta(seconds=i * 60 / 300)
        out.append(
            json.dumps(
                {
                    "event_id": f"e{i}",
                    "timestamp": at.isoformat(),
                    "app": "shop",
                    "task": "classify",
                    "model": "small" if canary else "big",
                    "variant": "canary" if canary else "baseline",
                    "latency_ms": rng.lognormvariate(6.0, 0.3),
                    "input_tokens": 200,
                    "output_tokens": 20,
                    "cost_usd": 0.0001 if canary else 0.001,
                    "quality": min(1.0, max(0.0, rng.gauss(0.6 if canary else 0.9, 0.05))),
                }
            ).encode()
        )
    return out


def test_a_bad_canary_is_rolled_back_by_the_dataflow_and_reported_on_slack(
    database: tuple[str, Engine],
) -> None:
    url, engine = database
    canary = CanarySettings(min_samples=50, min_stage_duration=timedelta(minutes=5))
    settings = Settings(storage=StorageSettings(database_url=url), canary=canary)
    ConfigManager(engine, clock=lambda: T0 - timedelta(hours=1)).update(
        "shop", {"classify": TaskConfig(model="big")}, author="alice", reason="initial"
    )
    decision = Decision(
        id=stable_id("decision", "shop", "classify"),
        created_at=T0,
        app="shop",
        task="classify",
        strategy="model_selection",
        action={"model": "small"},
        rationale="small is ten times cheaper",
        expected_impact=ExpectedImpact(cost_change_pct=-90.0),
        confidence=0.9,
    )
    with session_scope(engine) as s:
        deployment = start_canary(s, decision, settings=canary, now=T0)

    records = _telemetry(3)
    batches = [
        RecordBatch(
            "llm.telemetry",
            0,
            list(range(i, i + len(records[i : i + 50]))),
            records[i : i + 50],
            [],
        )
        for i in range(0, len(records), 50)
    ]
    run_main(
        build_flow(
            settings,
            FlowIO(
                source=TestingSource(batches),
                windows=TestingSink([]),
                strays=TestingSink([]),
                insights=TestingSink([]),
                dead_letters=TestingSink([]),
            ),
            strategies=[],
        )
    )
    with session_scope(engine) as s:
        done = get_deployment(s, deployment.id)
        events = {e.event_type for e in list_outbox(s)}
    assert done.status == "rolled_back"
    assert done.weight == 0.01
    assert "quality" in done.reason
    assert done.verdicts[0].outcome == "fail"
    assert ConfigManager(engine).active("shop").tasks["classify"] == TaskConfig(model="big")
    assert "rollback" in events

    with serving(OkSlack) as slack:
        routed = settings.with_overrides(
            integrations=updated(
                IntegrationSettings(),
                slack__webhook_url=slack.url(),
                poll_interval=timedelta(milliseconds=50),
                routes=(RouteRule(targets=("slack",), events=("rollback",)),),
            )
        )

        async def deliver() -> None:
            service = IntegrationsService(routed, engine=engine)
            await service.start()
            try:
                for _ in range(200):
                    if slack.requests:
                        return
                    await asyncio.sleep(0.05)
            finally:
                await service.stop()

        asyncio.run(deliver())
    (message,) = slack.requests
    text = json.dumps(message.json())
    assert "shop" in text
    assert "classify" in text
    assert "quality" in text
