"""A broker that comes back without its topics: nothing is silently skipped, and it is reported.

The in-memory broker is restarted between two bounded processor runs (the issue's embedded
broker restart): the new topic's offsets start again at 0, and the recovered offsets of the first
run fall *inside* the new partitions, which used to skip their first records without a trace.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy import create_engine, text

from collector.producer import TelemetryProducer
from core.settings import KafkaSettings, ProcessorSettings, Settings, StorageSettings
from orchestrator.pipeline_metrics import recovered_positions
from storage.kafka import EmbeddedBroker, ensure_topics
from tests import processor_runs
from tests.telemetry_samples import T0

pytestmark = pytest.mark.integration

TOPIC, DLQ = "llm.telemetry", "llm.telemetry.dlq"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test alone (it is restarted, which empties it)."""
    own = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    own.start()
    try:
        yield own
    finally:
        own.stop()


def _events(phase: int, n: int) -> list[bytes]:
    """``n`` calls of six apps, one every 50 ms, phase ``k`` an hour after phase ``k - 1``."""
    start = T0 + timedelta(hours=phase)
    return [
        json.dumps(
            {
                "event_id": f"p{phase}-{i}",
                "timestamp": int((start + timedelta(milliseconds=50 * i)).timestamp() * 1000),
                "app": f"app-{i % 6}",
                "model": "gpt-4o-mini",
                "latency_ms": 100 + i % 50,
                "input_tokens": 10,
                "output_tokens": 5,
            }
        ).encode()
        for i in range(n)
    ]


def _windowed(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        total = conn.execute(
            text("SELECT coalesce(sum(count), 0) FROM window_stats WHERE kind = 'tumbling'")
        ).scalar_one()
    engine.dispose()
    return int(total)


def _partitions(bootstrap: str, topic: str) -> int:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, 10).topics[topic]
    return len(meta.partitions)


def _run(settings: Settings) -> str:
    [proc] = processor_runs.start(settings, stderr=subprocess.PIPE)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    return stderr.decode()


def test_a_recreated_topic_is_read_again_from_its_start_and_the_reset_is_counted(
    broker: EmbeddedBroker, fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    url = fresh_database()
    settings = Settings(
        kafka=KafkaSettings(
            bootstrap_servers=broker.bootstrap, telemetry_topic=TOPIC, dlq_topic=DLQ, tail=False
        ),
        storage=StorageSettings(database_url=url, data_dir=str(tmp_path)),
        processor=ProcessorSettings(snapshot_interval=timedelta(seconds=1)),
    )
    # The processor creates its missing topics with the configured partition count.
    _run(settings)
    assert _partitions(broker.bootstrap, TOPIC) == settings.kafka.partitions == 3
    first, second = _events(0, 3000), _events(1, 6000)
    assert TelemetryProducer(broker.bootstrap, TOPIC).send_all(first).failed == 0
    _run(settings)
    assert _windowed(url) == len(first)
    before = recovered_positions(tmp_path / "recovery", TOPIC)
    assert sum(offset for offset, _, _ in before.values()) == len(first)
    assert all(resets == 0 for _, resets, _ in before.values())

    broker.stop()
    broker.start()  # in memory: the topics are gone
    ensure_topics(broker.bootstrap, {TOPIC: 3, DLQ: 3})  # as the collector does before sending
    assert TelemetryProducer(broker.bootstrap, TOPIC).send_all(second).failed == 0
    stderr = _run(settings)

    assert _windowed(url) == len(first) + len(second), "every event of the new topic is windowed"
    after = recovered_positions(tmp_path / "recovery", TOPIC)
    assert sum(offset for offset, _, _ in after.values()) == len(second)
    for p, (old_offset, _, _) in before.items():
        _, resets, reread = after[p]
        assert resets == (1 if old_offset else 0), (p, before, after)
        assert reread == min(old_offset, after[p][0]), (p, before, after)
    assert "was recreated" in stderr
