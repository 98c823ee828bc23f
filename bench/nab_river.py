"""river's HalfSpaceTrees on the NAB subset, scored like :mod:`bench.nab` (a candidate detector).

``python -m bench.nab_river [--data DIR] [--category C ...]``

For every series: the value, min-max scaled online (:class:`river.preprocessing.MinMaxScaler`,
HalfSpaceTrees expects features in [0, 1]), feeds a :class:`river.anomaly.HalfSpaceTrees`
(``n_trees`` 25, ``height`` 15, ``window_size`` 250, seed 42: river's documented defaults but
the seed); the score of each point is taken before the point is learned. A detection is a point
whose score reaches ``THRESHOLD`` after ``QUIET`` points without one (so one excursion is one
detection, as the anomaly analyzer reports an incident once). The same parameters for every
file. Scores per category and overall with the published ones beside them, as
:mod:`bench.nab` prints them (``bench.nab_report``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.console import Console
from river.anomaly import HalfSpaceTrees
from river.preprocessing import MinMaxScaler

from bench.nab import DEFAULT_DATA, PROFILES, gaussian_detections
from bench.nab_report import FileResult, render_categories
from bench.nab_scoring import Series, load_profiles, load_series, load_windows, score_file

THRESHOLD = 0.9  # HalfSpaceTrees score (0..1) from which a point is anomalous
QUIET = 288  # points without a detection before the next one counts (a day at 5 minutes)


def hst_detections(series: Series) -> list[datetime]:
    """The detections of an online HalfSpaceTrees on ``series`` (see the module docstring)."""
    scaler = MinMaxScaler()
    model = HalfSpaceTrees(n_trees=25, height=15, window_size=250, seed=42)
    found: list[datetime] = []
    last = -QUIET - 1
    for i, (ts, value) in enumerate(zip(series.timestamps, series.values, strict=True)):
        x = {"v": float(value)}
        scaler.learn_one(x)  # type: ignore[no-untyped-call]
        scaled = scaler.transform_one(x)  # type: ignore[no-untyped-call]
        score = float(model.score_one(scaled))  # type: ignore[no-untyped-call]
        model.learn_one(scaled)  # type: ignore[no-untyped-call]
        if score >= THRESHOLD and i - last > QUIET:
            found.append(ts)
            last = i
    return found


def main(argv: Sequence[str] | None = None) -> None:
    """Score HalfSpaceTrees on every category (or the ones given)."""
    parser = argparse.ArgumentParser(prog="python -m bench.nab_river")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--category", action="append", default=None)
    args = parser.parse_args(argv)
    data: Path = args.data
    windows = load_windows(data / "labels")
    profiles = load_profiles(data / "config" / "profiles.json")
    categories: list[str] = args.category or sorted(
        d.name for d in (data / "data").iterdir() if d.is_dir()
    )
    started = time.perf_counter()
    results: list[FileResult] = []
    for category in categories:
        for csv_path in sorted((data / "data" / category).glob("*.csv")):
            key = f"{category}/{csv_path.name}"
            if key not in windows:
                continue
            series = load_series(csv_path)
            began = time.perf_counter()
            ours = hst_detections(series)
            seconds = time.perf_counter() - began
            baseline = gaussian_detections(series)
            results.append(
                FileResult(
                    key=key,
                    windows=len(windows[key]),
                    ours=ours,
                    baseline=baseline,
                    ours_scores={
                        p: score_file(series.timestamps, windows[key], ours, profiles[p])
                        for p in PROFILES
                    },
                    baseline_scores={
                        p: score_file(series.timestamps, windows[key], baseline, profiles[p])
                        for p in PROFILES
                    },
                    backtest_seconds=seconds,
                    insights=len(ours),
                )
            )
    console = Console(width=160)
    console.print("[bold]ours = river HalfSpaceTrees[/] (not the anomaly analyzer)")
    render_categories(results, time.perf_counter() - started, console)


if __name__ == "__main__":
    main()
