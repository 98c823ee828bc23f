"""Prompt rewrites end to end: actuator → pending decision → Claude (a local Messages API) →
canary with the shorter template; the optimizer's own call lands in the telemetry topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from core.app_config import PromptConfig, TaskConfig
from core.decisions import Decision, ExpectedImpact, stable_id
from core.settings import IntegrationSettings, KafkaSettings, Settings, updated
from operators.strategies import REWRITE_KEY
from orchestrator.services.integrations import IntegrationsService
from rollout.config_manager import ConfigManager
from sinks.actuator import Actuator, PeriodWork
from storage.database import create_db_engine, session_scope
from storage.decisions import get_decision
from tests.integration.test_collector import read_topic
from tests.unit.integrations.fakes import ANTHROPIC_KEY, FakeAnthropic, serving

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TEMPLATE = (
    "You are a meticulous support assistant working for ACME. Read the ticket below carefully. "
    "Ticket: {ticket}. Decide whether it is about a bug, about billing or about something else, "
    "and answer with exactly one word: bug, billing or other."
)


@pytest.fixture
def engine(fresh_database: Callable[[], str]) -> Iterator[Engine]:
    engine = create_db_engine(fresh_database())
    yield engine
    engine.dispose()


def _propose(engine: Engine, settings: Settings) -> Decision:
    ConfigManager(engine, clock=lambda: T0 - timedelta(hours=1)).update(
        "shop",
        {"classify": TaskConfig(model="big", prompt=PromptConfig(template=TEMPLATE))},
        author="alice",
        reason="initial",
    )
    decision = Decision(
        id=stable_id("prompt", "shop", "classify"),
        created_at=T0,
        app="shop",
        task="classify",
        strategy="prompt_optimization",
        action={"prompt": {"prompt_cache": True}, REWRITE_KEY: "requested"},
        rationale="the fixed prompt is 80 % of input tokens",
        expected_impact=ExpectedImpact(cost_change_pct=-40.0),
        confidence=0.9,
    )
    work = PeriodWork(
        app="shop",
        window_start=T0 - timedelta(minutes=1),
        window_end=T0,
        proposals=[decision],
        windows={"classify": []},
    )
    Actuator(engine, settings, None).apply(work)
    with session_scope(engine) as s:
        waiting = get_decision(s, decision.id)
    assert waiting.status == "proposed"
    assert waiting.action[REWRITE_KEY] == "pending"
    return decision


def _serve(engine: Engine, settings: Settings, done: Callable[[], bool]) -> None:
    async def run() -> None:
        service = IntegrationsService(settings, engine=engine)
        await service.start()
        try:
            for _ in range(200):
                if done():
                    return
                await asyncio.sleep(0.05)
        finally:
            await service.stop()

    asyncio.run(run())


def _status(engine: Engine, decision_id: str) -> Decision:
    with session_scope(engine) as s:
        return get_decision(s, decision_id)


def test_rewrite_becomes_a_canary_and_its_own_call_is_telemetry(
    engine: Engine, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    with serving(FakeAnthropic) as claude:
        settings = Settings(
            kafka=KafkaSettings(
                bootstrap_servers=kafka_bootstrap, telemetry_topic=topics["telemetry"]
            ),
            integrations=updated(
                IntegrationSettings(),
                anthropic__api_key=ANTHROPIC_KEY,
                anthropic__base_url=claude.base_url,
                poll_interval=timedelta(milliseconds=50),
            ),
        )
        decision = _propose(engine, settings)
        _serve(engine, settings, lambda: _status(engine, decision.id).status == "canary")
    started = _status(engine, decision.id)
    assert started.status == "canary"
    assert started.evidence["rewrite"] == "done"
    canary = ConfigManager(engine).active("shop").tasks["classify"].canary
    assert canary is not None
    assert canary.overrides == {"prompt": {"prompt_cache": True, "template": claude.answer}}
    ((key, value, _headers),) = read_topic(kafka_bootstrap, topics["telemetry"], 1)
    event = json.loads(value)
    assert key == b"llm-auto-optimizer"
    assert (event["app"], event["task"]) == ("llm-auto-optimizer", "prompt_rewrite")
    assert event["input_tokens"] > 0


def test_a_rewrite_that_loses_a_placeholder_is_not_used(engine: Engine) -> None:
    with serving(FakeAnthropic) as claude:
        claude.answer = "Classify the ticket as bug, billing or other."
        settings = Settings(
            integrations=updated(
                IntegrationSettings(),
                anthropic__api_key=ANTHROPIC_KEY,
                anthropic__base_url=claude.base_url,
                poll_interval=timedelta(milliseconds=50),
            ),
        )
        decision = _propose(engine, settings)
        _serve(engine, settings, lambda: _status(engine, decision.id).status == "canary")
    started = _status(engine, decision.id)
    assert started.evidence["rewrite"] == "skipped: the rewrite lost {ticket}"
    canary = ConfigManager(engine).active("shop").tasks["classify"].canary
    assert canary is not None
    assert canary.overrides == {"prompt": {"prompt_cache": True}}
