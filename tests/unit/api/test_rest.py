"""The REST app over its ASGI interface with a SQLite database: auth, roles, validation, data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.rest.app import create_app
from core.events import LlmCall
from core.insights import Insight
from core.settings import ApiSettings, Settings, StorageSettings
from core.stats import StrayEvent, WindowKey
from operators.window_stats import summarize
from storage.api_keys import ApiKeyRepository
from storage.database import create_db_engine, migrate
from storage.insights import InsightRepository
from storage.strays import StrayRepository
from storage.windows import WindowRepository

ADMIN = "unit-admin-key"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:  # type: ignore[type-arg]
    settings = Settings(
        storage=StorageSettings(data_dir=str(tmp_path)), api=ApiSettings(bootstrap_admin_key=ADMIN)
    )
    engine = create_db_engine(settings.storage.resolved_database_url)
    migrate(engine)
    keys = ApiKeyRepository(engine)
    roles = {role: keys.create(f"{role}-key", role) for role in ("viewer", "ingest")}
    calls = [
        LlmCall(
            event_id=f"c{i}",
            timestamp=T0 + timedelta(minutes=m, seconds=i),
            app="shop",
            task=task,
            model="m",
            latency_ms=10.0 * (i + 1),
            input_tokens=5,
            output_tokens=1,
            cost_usd=0.5,
            status="error" if i == 0 else "ok",
        )
        for m in range(3)
        for task in ("faq", "search")
        for i in range(4)
    ]
    repo = WindowRepository(engine)
    for m in range(3):
        for task in ("faq", "search"):
            start = T0 + timedelta(minutes=m)
            mine = [
                c
                for c in calls
                if c.task == task and start <= c.timestamp < start + timedelta(minutes=1)
            ]
            repo.upsert(
                [
                    summarize(
                        "tumbling",
                        start,
                        start + timedelta(minutes=1),
                        WindowKey("shop", task, "m", "baseline"),
                        mine,
                    )
                ]
            )
    StrayRepository(engine).add(
        [
            StrayEvent(
                kind="late",
                event_id=f"late-{i}",
                app="shop",
                task=task,
                event_time=T0,
                watermark=T0,
                in_window=True,
                detail="window corrected",
            )
            for i, task in enumerate(("faq", "faq", "search"))
        ]
    )
    InsightRepository(engine).add(
        Insight(
            id=f"i-{n}",
            app="shop",
            task=task,
            analyzer=analyzer,
            kind="k",
            severity=severity,
            window_start=T0 + timedelta(minutes=n),
            window_end=T0 + timedelta(minutes=n + 1),
            metric="latency_ms.p95",
            value=float(n),
            baseline=1.0,
            score=2.0,
            message="m",
            evidence={"threshold": 1000.0},
        )
        for n, (task, analyzer, severity) in enumerate(
            [
                ("faq", "performance", "warning"),
                ("faq", "cost", "critical"),
                ("search", "performance", "info"),
            ]
        )
    )
    engine.dispose()
    with TestClient(create_app(settings)) as test_client:
        yield test_client, roles


def test_open_endpoints_need_no_key(client) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    assert c.get("/health/live").json() == {"status": "ok"}
    health = c.get("/health")
    assert health.status_code == 200
    assert health.json()["dependencies"]["database"] == {
        "status": "ok",
        "required": True,
        "detail": "",
    }
    assert c.get("/health/ready").status_code == 200
    assert c.get("/schema/openapi.json").json()["paths"]["/api/v1/metrics/summary"]
    metrics = c.get("/metrics").text
    assert (
        'litestar_requests_total{app_name="llmopt_rest",method="GET",path="/health/live"' in metrics
    )


def test_summary_requires_a_known_key_and_a_reading_role(client) -> None:  # type: ignore[no-untyped-def]
    c, roles = client
    assert c.get("/api/v1/metrics/summary?app=shop").status_code == 401
    bad = c.get("/api/v1/metrics/summary?app=shop", headers={"x-api-key": "nope"})
    assert bad.status_code == 401
    assert "unknown" in bad.json()["detail"]
    ingest = c.get("/api/v1/metrics/summary?app=shop", headers={"x-api-key": roles["ingest"]})
    assert ingest.status_code == 403
    viewer = c.get("/api/v1/metrics/summary?app=shop", headers={"x-api-key": roles["viewer"]})
    assert viewer.status_code == 200


def test_summary_returns_windows_and_totals(client) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    body = c.get(
        "/api/v1/metrics/summary",
        params={"app": "shop", "task": "faq"},
        headers={"x-api-key": ADMIN},
    ).json()
    assert [w["window_start"] for w in body["windows"]] == [
        "2026-03-01T10:00:00Z",
        "2026-03-01T10:01:00Z",
        "2026-03-01T10:02:00Z",
    ]
    assert body["totals"] == {
        "windows": 3,
        "count": 12,
        "ok_count": 9,
        "error_count": 3,
        "error_rate": 0.25,
        "input_tokens": 60,
        "output_tokens": 12,
        "cost_usd": 6.0,
    }
    assert body["windows"][0]["latency_ms"]["max"] == 40.0
    assert body["strays"] == {"late": 2, "unmatched_feedback": 0}
    whole_app = c.get(
        "/api/v1/metrics/summary", params={"app": "shop"}, headers={"x-api-key": ADMIN}
    )
    assert whole_app.json()["strays"] == {"late": 3, "unmatched_feedback": 0}
    ranged = c.get(
        "/api/v1/metrics/summary",
        params={"app": "shop", "since": "2026-03-01T10:01:00Z", "until": "2026-03-01T10:02:00Z"},
        headers={"x-api-key": ADMIN},
    ).json()
    assert [(w["task"], w["window_start"]) for w in ranged["windows"]] == [
        ("faq", "2026-03-01T10:01:00Z"),
        ("search", "2026-03-01T10:01:00Z"),
    ]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "app"),
        ("app=shop&limit=0", "limit"),
        ("app=shop&kind=hourly", "kind"),
        ("app=shop&since=yesterday", "since"),
        (
            "app=shop&since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z",
            "since must not be after until",
        ),
    ],
)
def test_bad_queries_get_400_with_a_useful_body(client, query: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    response = c.get(f"/api/v1/metrics/summary?{query}", headers={"x-api-key": ADMIN})
    assert response.status_code == 400
    assert fragment in response.text


def test_insights_are_listed_newest_first_with_filters(client) -> None:  # type: ignore[no-untyped-def]
    c, roles = client
    url = "/api/v1/metrics/insights"
    everything = c.get(url, params={"app": "shop"}, headers={"x-api-key": roles["viewer"]}).json()
    assert [i["id"] for i in everything] == ["i-2", "i-1", "i-0"]
    assert everything[2]["evidence"] == {"threshold": 1000.0}
    perf = c.get(
        url, params={"app": "shop", "analyzer": "performance"}, headers={"x-api-key": ADMIN}
    )
    assert [i["id"] for i in perf.json()] == ["i-2", "i-0"]
    faq_critical = c.get(
        url,
        params={"app": "shop", "task": "faq", "severity": "critical"},
        headers={"x-api-key": ADMIN},
    )
    assert [i["id"] for i in faq_critical.json()] == ["i-1"]
    bad = c.get(url, params={"app": "shop", "severity": "loud"}, headers={"x-api-key": ADMIN})
    assert bad.status_code == 400
    assert "severity" in bad.text
    assert (
        c.get(url, params={"app": "shop"}, headers={"x-api-key": roles["ingest"]}).status_code
        == 403
    )


def test_a_database_that_is_down_gives_503_not_500(tmp_path: Path) -> None:
    from storage.kafka import free_port

    settings = Settings(
        storage=StorageSettings(
            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere",
            data_dir=str(tmp_path),
        ),
        api=ApiSettings(bootstrap_admin_key=ADMIN),
    )
    with TestClient(create_app(settings)) as c:  # starts although the database is down
        health = c.get("/health")
        assert health.status_code == 503
        assert health.json()["dependencies"]["database"]["status"] == "down"
        assert c.get("/health/live").status_code == 200
        summary = c.get("/api/v1/metrics/summary?app=x", headers={"x-api-key": ADMIN})
        assert summary.status_code == 503
        assert summary.json()["detail"] == "database unavailable"
        assert "127.0.0.1" not in summary.text
        other = c.get("/api/v1/metrics/summary?app=x", headers={"x-api-key": "some-other-key"})
        assert other.status_code == 503  # cannot tell without the database: not a 401, not a 500
