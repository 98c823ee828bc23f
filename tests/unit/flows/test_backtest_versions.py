"""``llmopt backtest`` with calls of two config versions and shadow scores."""

from __future__ import annotations

import json
from pathlib import Path

from tests.telemetry_samples import T0
from tests.unit.flows.test_backtest import _backtest


def test_windows_jsonl_keeps_versions_apart_and_the_report_merges_them(tmp_path: Path) -> None:
    t0 = int(T0.timestamp() * 1000)
    lines = [
        json.dumps(
            {
                "event_id": f"e{i}",
                "timestamp": t0 + i * 1000,
                "app": "shop",
                "task": "faq",
                "model": "big",
                "latency_ms": 100 + i,
                "input_tokens": 10,
                "output_tokens": 5,
                "quality": 1.0,
                "shadow_model": "small",
                "shadow_quality": 0.5 if i % 2 else 1.0,
                "config_version": 1 + i % 2,
            }
        ).encode()
        for i in range(120)
    ]
    done = _backtest(tmp_path, lines)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    rows = [json.loads(line) for line in (out / "windows.jsonl").read_text().splitlines()]
    tumbling = sorted(
        (r["window_start"], r["config_version"], r["count"], r["shadow"])
        for r in rows
        if r["kind"] == "tumbling"
    )
    minute = [
        T0.strftime("%Y-%m-%dT%H:%M:%SZ"),
        T0.replace(minute=1).strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]
    pairs = {
        1: {"small": {"count": 30, "served_sum": 30.0, "shadow_sum": 30.0, "diff_sq_sum": 0.0}},
        2: {"small": {"count": 30, "served_sum": 30.0, "shadow_sum": 15.0, "diff_sq_sum": 7.5}},
    }
    assert tumbling == [(m, v, 30, pairs[v]) for m in minute for v in (1, 2)]
    report = (out / "report.html").read_text()
    # One row per segment, its windows counted per period (the two versions merged): 2, 120 calls.
    assert "<td>shop</td><td>faq</td><td>big</td><td>baseline</td><td>2</td><td>120</td>" in report
