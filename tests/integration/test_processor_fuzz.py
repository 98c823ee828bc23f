"""A live processor fed valid events mixed with hundreds of generated bad records (issue 16).

The bad records: every contract field given every JSON type and extreme, bad UTF-8, NUL,
nesting, cut records, arbitrary bytes, pairs that only join into JSON (tests.fuzz_records).

The real ``python -m bytewax.run flows.main`` over tansu and PostgreSQL: the run ends normally,
the windows count every valid event, and every bad record is in the DLQ with a reason, whole
when it fits ``kafka.max_message_bytes`` (above librdkafka's 1 MB default here) and truncated
with a ``truncated`` header when the broker accepted more than that.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import create_engine, text

from core.events import Rejection, decode_event
from core.settings import Settings
from sinks.dead_letters import REASON_HEADER, TRUNCATED_HEADER
from tests import processor_runs
from tests.fuzz_records import bad_records, encode, valid_call

pytestmark = pytest.mark.integration

LIMIT = 2 * 1024 * 1024  # kafka.max_message_bytes of this run
VALID = 1500


def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "assert", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    out = []
    while True:
        msg = consumer.poll(10.0)
        assert msg is not None, f"timed out reading {topic}"
        if msg.error():
            break
        headers = {h[0]: h[1] for h in msg.headers() or [] if isinstance(h[1], bytes)}
        out.append((msg.value() or b"", headers))
    consumer.close()
    return out


def _reason(record: bytes) -> str:
    result = decode_event(record, LIMIT)
    assert isinstance(result, Rejection)
    return result.reason


def test_bad_records_of_every_shape_go_to_the_dlq_and_valid_ones_are_windowed(
    flow_settings: Settings, tmp_path: Path
) -> None:
    # The generated records the decoder rejects (most of them; the valid few are left out so
    # that their event ids do not collide with the valid events').
    candidates = bad_records(random.Random(16))
    invalid = [r for r in candidates if isinstance(decode_event(r, LIMIT), Rejection)]
    assert len(invalid) >= 300
    kafka = dataclasses.replace(flow_settings.kafka, max_message_bytes=LIMIT)
    storage = dataclasses.replace(flow_settings.storage, data_dir=str(tmp_path))
    run_settings = dataclasses.replace(flow_settings, kafka=kafka, storage=storage)
    big = b'{"event_id": "big", "pad": "' + b"x" * (1536 * 1024)  # 1.5 MB, not JSON
    huge = b"y" * (LIMIT + 100_000)  # beyond the limit: the DLQ gets a truncated copy
    bad = [*invalid, big, huge]
    valid = [encode(valid_call(i)) for i in range(VALID)]
    records = [*valid, *bad]
    random.Random(7).shuffle(records)

    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "message.max.bytes": 4 * LIMIT}
    )
    for record in records:
        producer.produce(kafka.telemetry_topic, record)
        producer.poll(0)
    assert producer.flush(30) == 0

    processor_runs.run(run_settings)  # exit code 0: the run ended normally

    engine = create_engine(flow_settings.storage.database_url)
    with engine.connect() as conn:
        counted = conn.execute(
            text("SELECT app, sum(count) FROM window_stats WHERE kind = 'tumbling' GROUP BY app")
        ).all()
    engine.dispose()
    assert dict(counted) == Counter(f"app{i % 3}" for i in range(VALID))

    # Every bad record once, with the decoder's reason; the oversized one cut to the limit.
    dead = _read_all(kafka.bootstrap_servers, kafka.dlq_topic)
    expected = Counter((r[:LIMIT], _reason(r).encode()) for r in bad)
    assert Counter((value, headers[REASON_HEADER]) for value, headers in dead) == expected
    truncated = [h for _, h in dead if TRUNCATED_HEADER in h]
    assert [h[TRUNCATED_HEADER] for h in truncated] == [str(len(huge)).encode()]
    assert b"record too large" in truncated[0][REASON_HEADER]
