"""Anomaly detection on every NAB category of the subset: the optimizer vs a windowed Gaussian.

``python -m bench.nab [--data DIR] [--out DIR]``

For each series of every category folder ``DIR/data/<category>`` (default
``../shared/data/nab`` next to the repository; ``--category`` picks some), with one set of
settings for every file:

1. **Telemetry.** One ``llm_call`` per point (app ``nab``, task = the file's stem, model
   ``series``, ``latency_ms`` = the value clipped at 0, no tokens), written to
   ``OUT/<stem>/telemetry.jsonl``.
2. **Ours.** The real backtest (:func:`flows.backtest.run_backtest`, in process) with the
   settings of ``settings.toml`` except the processor windows: a 5-minute tumbling window (one
   point per window) and a 25-minute sliding window with a 5-minute step. The analyzers keep their
   defaults. Detections are the anomaly starts (``"analyzer": "anomaly"``, ``"kind":
   "anomaly_start"``; drift insights are not point detections) of
   ``OUT/<stem>/backtest/insights.jsonl`` with severity ``warning`` or ``critical``, at the
   insight's ``window_end`` (the moment the detection is available). An analyzer reports an
   incident once when it starts (warning/critical) and once when it ends; the end must be
   ``info`` so that it is not counted as a second detection. Several insights at the same
   ``window_end`` (several metrics) are one detection, as NAB scores one per point.
3. **Baseline.** A windowed Gaussian on the raw values: for every point, the mean and standard
   deviation of the 288 points before it (one day of 5-minute points; NAB's own detector uses a
   longer window that these two-week files cannot fill), ``z = |value - mean| / std`` and the
   tail probability ``Q(z) = erfc(z / sqrt 2) / 2``; a point is a detection when
   ``Q(z) < 1e-3`` (``z > 3.09``). The same parameters for every file, no tuning. Unlike NAB, the
   threshold is not optimised per profile.
4. **Scores.** :mod:`bench.nab_scoring` with the standard, reward_low_FP_rate and
   reward_low_FN_rate profiles of ``DIR/config/profiles.json``; per file and in total (raw, null
   and perfect scores summed over the files, then normalised, as NAB does), per category and
   over all files, beside the published ARTime, HTM and CAD OSE scores
   (:mod:`bench.nab_report`); ``artificialNoAnomaly`` (no windows) shows its raw false-positive
   cost. ``--replay`` re-judges the windows of an earlier run with the anomaly analyzer alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from rich.console import Console
from rich.table import Table

from bench.nab_report import FileResult, render_categories
from bench.nab_scoring import (
    FileScore,
    Profile,
    Series,
    Window,
    load_profiles,
    load_series,
    load_windows,
    score_file,
    total_normalised,
)
from core.settings import Settings, load_settings
from core.stats import WindowStats
from flows.backtest import run_backtest
from operators.analyzers import AnalysisRunner, AnomalyAnalyzer

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "nab"
DEFAULT_OUT = REPO / "var" / "bench" / "nab"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
PROFILE_LABELS = ("standard", "low FP", "low FN")
APP = "nab"
MODEL = "series"
DETECTING_SEVERITIES = frozenset({"warning", "critical"})

TUMBLING = timedelta(minutes=5)
SLIDING = timedelta(minutes=25)
SLIDING_STEP = timedelta(minutes=5)

GAUSSIAN_WINDOW = 288  # trailing points: one day at 5 minutes
GAUSSIAN_TAIL = 1e-3  # detect when the tail probability of |z| is below this (z > 3.09)

_ENCODER = msgspec.json.Encoder()


def write_telemetry(series: Series, task: str, path: Path) -> int:
    """Write one ``llm_call`` per point to ``path`` (JSON lines); return the number written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for i, (ts, value) in enumerate(zip(series.timestamps, series.values, strict=True)):
            event = {
                "kind": "llm_call",
                "event_id": f"{APP}-{task}-{i}",
                "timestamp": int(ts.timestamp() * 1000),
                "app": APP,
                "task": task,
                "model": MODEL,
                "latency_ms": max(float(value), 0.0),
                "input_tokens": 0,
                "output_tokens": 0,
            }
            fh.write(_ENCODER.encode(event) + b"\n")
    return len(series.timestamps)


def anomaly_detections(insights_path: Path) -> list[datetime]:
    """The times of the anomaly insights with severity warning or critical (deduplicated)."""
    found: set[datetime] = set()
    if not insights_path.exists():
        return []
    for line in insights_path.read_bytes().splitlines():
        if not line.strip():
            continue
        insight = json.loads(line)
        if insight.get("analyzer") != "anomaly" or insight.get("kind") != "anomaly_start":
            continue
        if insight.get("severity") not in DETECTING_SEVERITIES:
            continue
        end = datetime.fromisoformat(str(insight["window_end"]).replace("Z", "+00:00"))
        found.add(end if end.tzinfo is not None else end.replace(tzinfo=UTC))
    return sorted(found)


def gaussian_tail(
    values: npt.NDArray[np.float64], window: int = GAUSSIAN_WINDOW
) -> npt.NDArray[np.float64]:
    """The tail probability of each point under a Gaussian fitted to the ``window`` before it.

    Points without a full trailing window get 1.0 (never a detection). A constant trailing
    window gives 1.0 when the point equals it and 0.0 otherwise.
    """
    tail = np.ones(len(values), dtype=np.float64)
    if len(values) <= window:
        return tail
    past = sliding_window_view(values[:-1], window)  # row j: values[j : j + window]
    mean = past.mean(axis=1)
    std = past.std(axis=1)
    current = values[window:]
    dev = np.abs(current - mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, dev / np.where(std > 0, std, 1.0), np.where(dev > 0, np.inf, 0.0))
    tail[window:] = [0.5 * math.erfc(v / math.sqrt(2.0)) for v in z.tolist()]
    return tail


def gaussian_detections(series: Series) -> list[datetime]:
    """The baseline's detections: every point whose tail probability is below the threshold."""
    tail = gaussian_tail(series.values)
    return [series.timestamps[i] for i in np.flatnonzero(tail < GAUSSIAN_TAIL).tolist()]


def backtest_settings() -> Settings:
    """The settings of ``settings.toml`` with the 5-minute processor windows of this benchmark."""
    settings = load_settings(REPO)
    processor = dataclasses.replace(
        settings.processor,
        tumbling_window=TUMBLING,
        sliding_window=SLIDING,
        sliding_step=SLIDING_STEP,
    )
    return dataclasses.replace(settings, processor=processor)


def replay_detections(settings: Settings, windows_path: Path) -> tuple[list[datetime], int]:
    """Re-judge a backtest's tumbling windows with the anomaly analyzer alone.

    Returns the detections (as :func:`anomaly_detections` reads them) and the insight count.
    """
    runner = AnalysisRunner([AnomalyAnalyzer(settings.analyzers)])
    decoder = msgspec.json.Decoder(WindowStats)
    found: set[datetime] = set()
    insights = 0
    with windows_path.open("rb") as fh:
        stats = [decoder.decode(line) for line in fh if line.strip()]
    for insight in [*runner.take(stats), *runner.flush()]:
        insights += 1
        if insight.kind == "anomaly_start" and insight.severity in DETECTING_SEVERITIES:
            found.add(insight.window_end)
    return sorted(found), insights


def run_file(
    key: str,
    csv_path: Path,
    windows: Sequence[Window],
    profiles: dict[str, Profile],
    settings: Settings,
    out: Path,
    replay: bool = False,
) -> FileResult:
    """Replay one series through the backtest and the baseline and score both.

    With ``replay``, the windows of an earlier backtest of the file are re-judged by the anomaly
    analyzer alone (:func:`replay_detections`) instead.
    """
    series = load_series(csv_path)
    stem = csv_path.stem
    folder = out / stem
    started = time.perf_counter()
    if replay:
        ours, insights = replay_detections(settings, folder / "backtest" / "windows.jsonl")
    else:
        telemetry = folder / "telemetry.jsonl"
        write_telemetry(series, stem, telemetry)
        result = run_backtest(settings, telemetry, folder / "backtest")
        ours, insights = anomaly_detections(result.out / "insights.jsonl"), result.insights
    backtest_seconds = time.perf_counter() - started
    baseline = gaussian_detections(series)
    return FileResult(
        key=key,
        windows=len(windows),
        ours=ours,
        baseline=baseline,
        ours_scores={
            p: score_file(series.timestamps, windows, ours, profiles[p]) for p in PROFILES
        },
        baseline_scores={
            p: score_file(series.timestamps, windows, baseline, profiles[p]) for p in PROFILES
        },
        backtest_seconds=backtest_seconds,
        insights=insights,
    )


def _cell(score: FileScore) -> str:
    normalised = score.normalised
    if normalised is None:  # a file without windows: only its false positives, in raw points
        return f"raw {score.raw:+.2f}"
    return f"{normalised:.1f}"


def render(results: Sequence[FileResult], wall: float, console: Console) -> None:
    """Print the per-file table and the totals."""
    table = Table(
        title="NAB per file: normalised scores (0 = detect nothing, 100 = perfect)",
        caption="files without windows show their raw score (false-positive cost) instead",
    )
    table.add_column("file", no_wrap=True)
    table.add_column("windows", justify="right")
    table.add_column("ours det", justify="right")
    for label in PROFILE_LABELS:
        table.add_column(f"ours {label}", justify="right")
    table.add_column("WG det", justify="right")
    for label in PROFILE_LABELS:
        table.add_column(f"WG {label}", justify="right")
    for r in results:
        table.add_row(
            r.key.split("/", 1)[-1].removesuffix(".csv"),
            str(r.windows),
            str(len(r.ours)),
            *(_cell(r.ours_scores[p]) for p in PROFILES),
            str(len(r.baseline)),
            *(_cell(r.baseline_scores[p]) for p in PROFILES),
        )
    ours_total = [total_normalised(r.ours_scores[p] for r in results) for p in PROFILES]
    base_total = [total_normalised(r.baseline_scores[p] for r in results) for p in PROFILES]
    table.add_section()
    table.add_row(
        f"TOTAL, {len(results)} files",
        str(sum(r.windows for r in results)),
        str(sum(len(r.ours) for r in results)),
        *(f"{v:.1f}" for v in ours_total),
        str(sum(len(r.baseline) for r in results)),
        *(f"{v:.1f}" for v in base_total),
        style="bold",
    )
    console.print(table)
    console.print(
        "ours = anomaly insights (warning/critical) of the backtest with default analyzer "
        "settings; WG = windowed Gaussian (trailing "
        f"{GAUSSIAN_WINDOW} points, tail probability < {GAUSSIAN_TAIL:g})."
    )
    insights = sum(r.insights for r in results)
    if not any(r.ours for r in results):
        console.print(
            f"[yellow]The backtests wrote {insights} insights but no anomaly insight with "
            "severity warning/critical on any file (no anomaly analyzer yet?): 'ours' scores 0, "
            "the score of detecting nothing.[/]"
        )
    else:
        console.print(
            f"backtest insights: {insights}; anomaly detections (distinct times): "
            f"{sum(len(r.ours) for r in results)}"
        )
    for label, ours_v, base_v in zip(PROFILE_LABELS, ours_total, base_total, strict=True):
        console.print(f"total {label:>8}: ours {ours_v:6.1f}   windowed Gaussian {base_v:6.1f}")
    backtest = sum(r.backtest_seconds for r in results)
    console.print(f"wall time {wall:.1f} s (backtests {backtest:.1f} s)")


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.nab", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="the NAB folder holding data/, labels/ and config/ (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="where telemetry and backtest outputs go (default: %(default)s)",
    )
    parser.add_argument(
        "--category",
        action="append",
        default=None,
        help="only this category (repeatable; default: every folder of DATA/data)",
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="re-judge the windows of an earlier run (OUT/<file>/backtest/windows.jsonl) with "
        "the anomaly analyzer alone instead of running the backtests (fast, for development)",
    )
    parser.add_argument(
        "--per-file", action="store_true", help="also print the table of every file"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the scores."""
    args = _args(argv)
    data: Path = args.data
    out: Path = args.out
    console = Console(width=max(Console().width, 160))  # the table needs ~160 columns
    started = time.perf_counter()
    windows = load_windows(data / "labels")
    profiles = load_profiles(data / "config" / "profiles.json")
    settings = backtest_settings()
    categories: list[str] = args.category or sorted(
        d.name for d in (data / "data").iterdir() if d.is_dir()
    )
    results: list[FileResult] = []
    for category in categories:
        for csv_path in sorted((data / "data" / category).glob("*.csv")):
            key = f"{category}/{csv_path.name}"
            if key not in windows:
                console.print(f"[yellow]{key}: no labels, skipped[/]")
                continue
            with console.status(f"{key} …"):
                results.append(
                    run_file(key, csv_path, windows[key], profiles, settings, out, args.replay)
                )
    if not results:
        raise SystemExit(f"no labelled series under {data / 'data'} for {categories}")
    wall = time.perf_counter() - started
    if args.per_file:
        render(results, wall, console)
    render_categories(results, wall, console)


if __name__ == "__main__":
    main()
