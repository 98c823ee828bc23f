"""``llmopt export``: the Parquet files, read back with polars, hold exactly the stored rows.

On the real PostgreSQL and on SQLite: windows (with and without TTFT, versions, shadow pairs
and error types), insights and decisions of several apps and times go in through the
repositories; the export read back and converted to the domain objects equals what the
repositories list, in full and under ``--app``/``--since``/``--until``. A backtest's output
folder exports the same way; bad options and an unmigrated database are clear errors.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest
from typer.testing import CliRunner

from core.decisions import Decision, ExpectedImpact, RollbackLimit
from core.events import LlmCall
from core.insights import Insight
from core.stats import WindowKey, WindowStats
from flows.export import KINDS, json_columns, parquet_schema
from operators.window_stats import summarize
from orchestrator.cli import app as cli
from storage.database import create_db_engine, migrate, session_scope
from storage.decisions import list_decisions, save_decision
from storage.export import ExportKind
from storage.insights import InsightRepository
from storage.windows import WindowRepository

pytestmark = pytest.mark.integration
T0 = datetime(2026, 6, 1, tzinfo=UTC)
APPS = ("shop", "search")
RUNNER = CliRunner()


def _window(app: str, minute: int, version: int | None) -> WindowStats:
    calls = [
        LlmCall(
            event_id=f"{app}-{minute}-{i}",
            timestamp=T0 + timedelta(minutes=minute, seconds=i, microseconds=17),
            app=app,
            task="classify",
            model="m",
            latency_ms=10.0 + i * 1.37,
            ttft_ms=3.0 + i if minute % 2 else None,
            input_tokens=100 + i,
            output_tokens=7,
            cost_usd=0.001 * i,
            status="ok" if i % 4 else "error",
            error_type=None if i % 4 else "timeout",
            quality=0.25 * (i % 5) if i % 3 else None,
            shadow_model="small" if i % 3 else None,
            shadow_quality=0.5 if i % 3 else None,
            config_version=version,
        )
        for i in range(9)
    ]
    start = T0 + timedelta(minutes=minute)
    key = WindowKey(app, "classify", "m", "baseline", version)
    return summarize("tumbling", start, start + timedelta(minutes=1), key, calls)


def _insight(app: str, minute: int) -> Insight:
    return Insight(
        id=f"{app}-insight-{minute}",
        app=app,
        task="classify",
        analyzer="performance",
        kind="latency_spike",
        severity="warning" if minute % 2 else "critical",
        window_start=T0 + timedelta(minutes=minute),
        window_end=T0 + timedelta(minutes=minute + 1),
        metric="latency_ms.p95",
        value=812.5 + minute,
        baseline=None if minute % 3 else 400.0,
        score=3.25,
        message=f"p95 latency of classify is {812 + minute} ms",
        evidence={"z": 4.5, "method": "robust z", "n": 120.0},
    )


def _decision(app: str, minute: int) -> Decision:
    return Decision(
        id=f"{app}-decision-{minute}",
        created_at=T0 + timedelta(minutes=minute, microseconds=250),
        app=app,
        task="classify",
        strategy="model_selection",
        action={"model": "small", "weights": [0.1, 0.9], "nested": {"a": None}},
        rationale="cheaper and as good",
        evidence={"quality_diff": -0.001, "n": 400},
        expected_impact=ExpectedImpact(cost_change_pct=-60.0, quality_change=-0.01),
        confidence=0.9,
        deployment_id=None,
        rollback_plan=(RollbackLimit(metric="quality_mean", limit=0.8, direction="min"),),
    )


def _store(url: str) -> None:
    engine = create_db_engine(url)
    migrate(engine)
    versions = (None, 3)
    WindowRepository(engine).upsert(
        _window(app, m, versions[m % 2]) for app in APPS for m in range(0, 12)
    )
    InsightRepository(engine).add(_insight(app, m) for app in APPS for m in range(0, 12, 2))
    with session_scope(engine) as s:
        for app in APPS:
            for m in range(0, 12, 3):
                save_decision(s, _decision(app, m), now=T0)
    engine.dispose()


def _stored(url: str, kind: ExportKind) -> list[Any]:
    """What the repositories list, by another path than the export's."""
    engine = create_db_engine(url)
    try:
        if kind == "windows":
            found: list[Any] = [w for a in APPS for w in WindowRepository(engine).query(app=a)]
        elif kind == "insights":
            found = [i for a in APPS for i in InsightRepository(engine).list(app=a)]
        else:
            with session_scope(engine) as s:
                found = list(list_decisions(s, limit=10_000).items)
    finally:
        engine.dispose()
    return found


def _read_back(path: Path, kind: ExportKind) -> list[Any]:
    frame = pl.read_parquet(path)
    assert frame.schema == pl.Schema(parquet_schema(kind))
    as_json = json_columns(kind)
    rows = [
        {k: json.loads(v) if k in as_json else v for k, v in row.items()}
        for row in frame.to_dicts()
    ]
    return [msgspec.convert(row, KINDS[kind]) for row in rows]


def _key(obj: Any) -> tuple[str, str]:
    if isinstance(obj, WindowStats):
        return (obj.app, f"{obj.window_start.isoformat()} {obj.config_version}")
    return (obj.app, obj.id)


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url = str(request.getfixturevalue("fresh_database")())
    else:
        url = f"sqlite:///{tmp_path / 'export.db'}"
    _store(url)
    return url


def _export(*args: str) -> Any:
    return RUNNER.invoke(cli, ["export", *args])


def _said(done: Any) -> str:
    """The command's output with the console's line wrapping undone."""
    return " ".join(done.output.split())


def test_every_kind_reads_back_as_the_stored_rows(database: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _export("--database-url", database, "--out", str(out))
    assert done.exit_code == 0, done.output
    for kind in KINDS:
        got = _read_back(out / f"{kind}.parquet", kind)
        want = _stored(database, kind)
        assert len(got) == len(want) > 0
        assert sorted(got, key=_key) == sorted(want, key=_key)
    windows = _read_back(out / "windows.parquet", "windows")
    assert {w.config_version for w in windows} == {None, 3}
    assert any(w.ttft_ms is None for w in windows)
    assert any(w.ttft_ms for w in windows)
    assert all(w.shadow and w.errors_by_type for w in windows)


def test_app_and_time_range_select_exactly_their_rows(database: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    since, until = T0 + timedelta(minutes=3), T0 + timedelta(minutes=9)
    done = _export(
        "--database-url", database, "--out", str(out), "--app", "search",
        "--since", "2026-06-01T02:03:00+02:00", "--until", until.isoformat(),
        "--kind", "windows", "--kind", "decisions",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert not (out / "insights.parquet").exists()
    windows = _read_back(out / "windows.parquet", "windows")
    want = [
        w
        for w in _stored(database, "windows")
        if w.app == "search" and since <= w.window_start < until
    ]
    assert sorted(windows, key=_key) == sorted(want, key=_key)
    assert len(want) == 6
    decisions = _read_back(out / "decisions.parquet", "decisions")
    assert [d.id for d in decisions] == ["search-decision-3", "search-decision-6"]


def test_an_empty_selection_writes_files_with_the_columns(database: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _export("--database-url", database, "--out", str(out), "--app", "nobody")
    assert done.exit_code == 0, done.output
    for kind in KINDS:
        frame = pl.read_parquet(out / f"{kind}.parquet")
        assert frame.height == 0
        assert frame.schema == pl.Schema(parquet_schema(kind))


def test_a_backtest_folder_exports_its_lines(tmp_path: Path) -> None:
    folder = tmp_path / "backtest"
    folder.mkdir()
    rows: dict[ExportKind, list[Any]] = {
        "windows": [
            msgspec.structs.replace(_window("shop", m, None), revision=m % 2) for m in range(4)
        ],
        "insights": [_insight("shop", m) for m in range(4)],
        "decisions": [_decision(a, m) for a in APPS for m in range(2)],
    }
    for kind, objs in rows.items():
        lines = [msgspec.json.encode(o) for o in objs]
        if kind == "windows":  # as the backtest writes them: without the judge's samples
            lines = [
                msgspec.json.encode(
                    {k: v for k, v in json.loads(x).items() if not k.endswith("_sample")}
                )
                for x in lines
            ]
        (folder / f"{kind}.jsonl").write_bytes(b"\n".join(lines) + b"\n\n")
    out = tmp_path / "out"
    done = _export("--from-backtest", str(folder), "--out", str(out), "--app", "shop")
    assert done.exit_code == 0, done.output
    for kind, objs in rows.items():
        want = [
            msgspec.structs.replace(o, latency_sample=(), quality_sample=())
            if kind == "windows"
            else o
            for o in objs
            if o.app == "shop"
        ]
        assert _read_back(out / f"{kind}.parquet", kind) == want


def test_clear_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    done = _export("--from-backtest", str(tmp_path), "--out", out)
    assert done.exit_code == 1
    assert "not a backtest's output folder" in _said(done)
    done = _export("--out", out, "--since", "2026-06-01T00:00")
    assert done.exit_code == 2
    assert "no UTC offset" in _said(done)
    done = _export("--out", out, "--since", "monday")
    assert done.exit_code == 2
    assert "not an ISO 8601 time" in _said(done)
    done = _export("--out", out, "--kind", "verdicts")
    assert done.exit_code == 2
    assert "not one of windows, insights, decisions" in _said(done)
    done = _export("--out", out, "--since", "2026-06-02T00:00Z", "--until", "2026-06-01T00:00Z")
    assert done.exit_code == 1
    assert "is not before" in _said(done)
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    done = _export("--database-url", empty, "--out", out)
    assert done.exit_code == 1
    assert "cannot read windows" in _said(done)
    (tmp_path / "bad").mkdir()
    for kind in KINDS:
        (tmp_path / "bad" / f"{kind}.jsonl").write_text('{"app": 1}\n')
    done = _export("--from-backtest", str(tmp_path / "bad"), "--out", out)
    assert done.exit_code == 1
    assert "bad/windows.jsonl:1 is not a window" in _said(done)
