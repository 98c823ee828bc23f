"""``llmopt backtest`` as a user runs it: a shuffled file in, ordered windows and reports out."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import msgspec

from core.stats import WindowStats
from tests.telemetry_samples import expected_windows, make_sample


def _backtest(tmp_path: Path, lines: list[bytes], **env: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "input.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "backtest",
            str(source),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _final_windows(out: Path, kind: str = "tumbling") -> dict[tuple[str, str], WindowStats]:
    decoder = msgspec.json.Decoder(WindowStats)
    final: dict[tuple[str, str], WindowStats] = {}
    for line in (out / "windows.jsonl").read_bytes().splitlines():
        w = decoder.decode(line)
        key = (w.app, w.window_start.strftime("%Y-%m-%dT%H:%M:%SZ"))
        if w.kind == kind and (key not in final or w.revision > final[key].revision):
            final[key] = w
    return final


def test_backtest_orders_by_event_time_and_writes_every_output(tmp_path: Path) -> None:
    sample = make_sample()
    lines = sample.records()
    random.Random(5).shuffle(lines)  # recorded out of order: the backtest restores event time
    done = _backtest(tmp_path, lines)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    final = _final_windows(out)
    expected = expected_windows(sample)
    assert set(final) == set(expected)
    for key, want in expected.items():
        assert (final[key].count, final[key].error_count) == (want["count"], want["error_count"])
        assert final[key].revision == 0  # in event-time order nothing is late
    assert (out / "late.jsonl").read_bytes() == b""
    dead = [json.loads(line) for line in (out / "dlq.jsonl").read_text().splitlines()]
    assert sorted(d["record"].encode() for d in dead) == sorted(sample.malformed)
    for d in dead:
        assert sample.malformed[d["record"].encode()] in d["reason"]
    report = (out / "report.html").read_text()
    assert "<td>support</td><td>classify</td><td>gpt-4o-mini</td>" in report
    assert f"{len(lines)} records" in report
    assert "window emissions" in done.stderr


def test_backtest_applies_window_settings(tmp_path: Path) -> None:
    sample = make_sample()
    done = _backtest(tmp_path, sample.records(), LLMOPT_PROCESSOR__TUMBLING_WINDOW="5m")
    assert done.returncode == 0, done.stderr
    final = _final_windows(tmp_path / "out")
    assert {w.window_end - w.window_start for w in final.values()} == {timedelta(minutes=5)}
    assert sum(w.count for w in final.values()) == 200


def test_backtest_rejects_invalid_settings_with_the_key_named(tmp_path: Path) -> None:
    done = _backtest(tmp_path, [b"{}"], LLMOPT_PROCESSOR__TUMBLING_WINDOW="soon")
    assert done.returncode == 2
    assert "processor.tumbling_window" in done.stderr
    assert "soon" in done.stderr
