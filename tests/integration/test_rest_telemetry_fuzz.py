"""``POST /api/v1/telemetry`` under fuzzed bodies, with the real ingest on tansu: never a 5xx.

Random bytes, deep nesting, invalid UTF-8 inside strings, integers beyond 64 bits and JSON values
of every type in every field: each batch is answered 202 (events accepted or rejected one by one,
the rejected ones in the DLQ) or 4xx, and a valid event sent after each one is accepted.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from api.rest.app import create_app
from storage.kafka import ensure_topics
from tests.unit.api.rest_support import ADMIN_KEY, migrated_database, rest_settings

pytestmark = pytest.mark.integration

HEADERS = {"x-api-key": ADMIN_KEY, "content-type": "application/json"}
VALID: dict[str, Any] = {
    "event_id": "valid",
    "timestamp": "2026-11-29T10:00:00Z",
    "app": "fuzz",
    "model": "m",
    "latency_ms": 5,
    "input_tokens": 1,
    "output_tokens": 2,
}
FIELDS = [*VALID, "kind", "task", "quality", "cost_usd", "attributes", "config_version", "variant"]
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["fields", "deep", "utf8", "bytes", "ndjson"]))
    if kind == "fields":
        event = dict(VALID)
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
            event[name] = draw(VALUES)
        return json.dumps([event]).encode()
    if kind == "deep":
        depth = draw(st.integers(100, 50_000))
        inner = draw(
            st.sampled_from(["[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth])
        )
        return draw(
            st.sampled_from([f"[{inner}]", '[{"event_id":"d","attributes":' + inner + "}]", inner])
        ).encode()
    if kind == "utf8":
        garbage = draw(st.binary(min_size=1, max_size=4).filter(lambda b: not _utf8(b)))
        return b'[{"event_id":"u' + garbage + b'","app":"x"}]'
    if kind == "ndjson":
        return b"\n".join(draw(st.lists(st.binary(max_size=40), min_size=1, max_size=4)))
    return draw(st.binary(max_size=200))


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@pytest.fixture(scope="module")
def client(
    redis_url: str, kafka_bootstrap: str, module_topics: dict[str, str]
) -> Iterator[TestClient[Any]]:
    with migrated_database() as url:
        settings = rest_settings(
            url, redis_url, kafka_bootstrap=kafka_bootstrap, topics=module_topics
        )
        with TestClient(create_app(settings)) as found:
            yield found


@pytest.fixture(scope="module")
def module_topics(kafka_bootstrap: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    names = {"telemetry": f"llm.telemetry.rf{suffix}", "dlq": f"llm.telemetry.dlq.rf{suffix}"}
    ensure_topics(kafka_bootstrap, {names["telemetry"]: 1, names["dlq"]: 1})
    return names


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies())
def test_fuzzed_telemetry_batches_never_get_a_5xx(client: TestClient[Any], body: bytes) -> None:
    answer = client.post("/api/v1/telemetry", content=body, headers=HEADERS)
    assert answer.status_code in (202, 400, 413, 415, 422), (answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        assert answer.json()["detail"]
    valid = client.post("/api/v1/telemetry", content=json.dumps([VALID]), headers=HEADERS)
    assert valid.status_code == 202
    assert valid.json()["accepted"] == 1
