"""Storage holds what the decoder accepts (issue 16): 64-bit token sums, finite JSON only."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.event_limits import MAX_TOKENS
from core.events import LlmCall
from core.insights import Insight
from core.settings import KafkaSettings
from core.stats import WindowKey
from operators.window_stats import summarize
from storage.database import create_db_engine, migrate
from storage.insights import InsightRepository
from storage.kafka import ensure_topics, topic_configs
from storage.models import DecisionRow, InsightRow
from storage.windows import WindowRepository

pytestmark = pytest.mark.integration
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def test_window_token_sums_beyond_32_bits_round_trip(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    migrate(engine)
    calls = [
        LlmCall(
            event_id=f"big{i}",
            timestamp=T0 + timedelta(seconds=i),
            app="big-tokens",
            task="t",
            model="m",
            latency_ms=1.0,
            input_tokens=MAX_TOKENS,
            output_tokens=MAX_TOKENS,
            cache_read_tokens=MAX_TOKENS,
            prompt_tokens_fixed=MAX_TOKENS,
            cost_usd=0.0,
        )
        for i in range(5)
    ]
    window = summarize(
        "tumbling",
        T0,
        T0 + timedelta(minutes=1),
        WindowKey("big-tokens", "t", "m", "baseline"),
        calls,
    )
    assert window.input_tokens == 5 * MAX_TOKENS > 2**31
    repo = WindowRepository(engine)
    repo.upsert([window])
    (stored,) = repo.query(app="big-tokens")
    assert (stored.input_tokens, stored.output_tokens, stored.cache_read_tokens) == (
        5 * MAX_TOKENS,
        5 * MAX_TOKENS,
        5 * MAX_TOKENS,
    )
    engine.dispose()


def _insight(evidence: dict[str, float | str]) -> Insight:
    return Insight(
        id="00000000-0000-0000-0000-00000000f1f1",
        app="nonfinite",
        task="t",
        analyzer="performance",
        kind="latency_regression",
        severity="warning",
        window_start=T0,
        window_end=T0 + timedelta(minutes=1),
        metric="latency_p95",
        value=1.0,
        baseline=None,
        score=1.0,
        message="m",
        evidence=evidence,
    )


def test_non_finite_numbers_in_json_columns_are_stored_as_null(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    migrate(engine)
    evidence: dict[str, float | str] = {
        "z": math.inf,
        "low": -math.inf,
        "p": math.nan,
        "n": 12.5,
        "name": "x",
    }
    InsightRepository(engine).add([_insight(evidence)])
    with Session(engine) as session:
        row = session.scalars(select(InsightRow).where(InsightRow.app == "nonfinite")).one()
        assert row.evidence == {"z": None, "low": None, "p": None, "n": 12.5, "name": "x"}
        # Any JSON column, nested values too (decision evidence, verdict checks...).
        session.add(
            DecisionRow(
                id="00000000-0000-0000-0000-00000000d1d1",
                created_at=T0,
                app="nonfinite",
                task="t",
                strategy="caching",
                action={"ttl": math.inf},
                rationale="r",
                evidence={"checks": [{"bound": -math.inf, "p": [math.nan, 0.5]}]},
                expected_impact={"cost_change_pct": math.nan},
                confidence=0.5,
                status="proposed",
                rollback_plan=[math.inf],
                updated_at=T0,
            )
        )
        session.commit()
    with engine.connect() as conn:
        raw = conn.execute(
            text("SELECT evidence::text FROM decisions WHERE app = 'nonfinite'")
        ).scalar_one()
    assert "Infinity" not in raw
    assert "NaN" not in raw
    assert '"p": [null, 0.5]' in raw
    engine.dispose()


def test_topics_are_created_with_the_record_size_limit(kafka_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        telemetry_topic=f"limits.{suffix}",
        dlq_topic=f"limits.dlq.{suffix}",
        max_message_bytes=2_000_000,
    )
    configs = topic_configs(kafka)
    assert configs[kafka.telemetry_topic] == {"max.message.bytes": "2000000"}
    assert int(configs[kafka.dlq_topic]["max.message.bytes"]) > 2_000_000
    ensure_topics(kafka_bootstrap, {kafka.telemetry_topic: 2, kafka.dlq_topic: 1}, configs=configs)
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert len(topics[kafka.telemetry_topic].partitions) == 2
    assert len(topics[kafka.dlq_topic].partitions) == 1
