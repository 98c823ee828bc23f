"""The per-category NAB table and the analyzer-only replay of stored windows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
from rich.console import Console

from bench.nab import backtest_settings, replay_detections
from bench.nab_report import FileResult, render_categories
from bench.nab_scoring import FileScore
from tests.unit.operators.analyzers.test_anomaly import BASE, win

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def _result(key: str, raw: float, null: float, perfect: float, windows: int) -> FileResult:
    score = FileScore(raw, null, perfect, 0, 0, 0)
    return FileResult(
        key=key,
        windows=windows,
        ours=[datetime(2026, 1, 1, tzinfo=UTC)],
        baseline=[],
        ours_scores=dict.fromkeys(PROFILES, score),
        baseline_scores=dict.fromkeys(PROFILES, FileScore(null, null, perfect, 0, 0, 0)),
        backtest_seconds=0.0,
        insights=1,
    )


def test_categories_are_normalised_over_their_files_beside_the_published_scores() -> None:
    results = [
        _result("realAdExchange/a.csv", raw=0.0, null=-2.0, perfect=2.0, windows=2),  # 50
        _result("realAdExchange/b.csv", raw=2.0, null=-2.0, perfect=2.0, windows=2),  # 100
        _result("artificialNoAnomaly/c.csv", raw=-0.11, null=0.0, perfect=0.0, windows=0),
    ]
    console = Console(width=200, record=True)
    render_categories(results, 1.0, console)
    text = console.export_text()
    adex = next(line for line in text.splitlines() if "realAdExchange" in line)
    assert "75.0" in adex  # (2 - -4) / (4 - -4) over both files
    assert "76.9" in adex  # HTM's published score
    noanomaly = next(line for line in text.splitlines() if "artificialNoAnomaly" in line)
    assert "raw -0.11" in noanomaly
    assert "raw -0.44" in noanomaly  # HTM's published false-positive cost
    overall = next(line for line in text.splitlines() if line.strip("│ ").startswith("all"))
    assert "73.6" in overall  # (2 - 0.11 + 4) / 8
    assert "77.0" in overall


def test_replay_finds_the_starts_the_analyzer_reports(tmp_path: Path) -> None:
    values = [*BASE, 400.0, *BASE]
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(win(i, v)) + b"\n" for i, v in enumerate(values)))
    found, insights = replay_detections(backtest_settings(), path)
    spike = win(len(BASE), 400.0)
    assert found == [spike.window_end]
    assert insights >= 1
