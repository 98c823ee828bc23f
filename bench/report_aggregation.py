"""The backtest report's aggregations: Python over msgspec structs (now) against polars.

```sh
.venv/bin/python -m bench.report_aggregation --windows 20000
.venv/bin/python -m bench.report_aggregation --windows 500
```

Writes a backtest-like ``windows.jsonl`` of ``--windows`` emissions (tumbling and sliding, 20
apps x 5 tasks x 2 models, every fourth window re-emitted as a correction with ``revision``
1, one config version) and computes, in one process, what ``report.html``'s table needs: the
final revision of each window, then per (app, task, model, variant) the windows, calls, errors,
cost and worst p95 of the tumbling windows:

1. **python** (:mod:`flows.report`): msgspec decodes each line into ``WindowStats``, the final
   revision by a dict, ``merge_versions``, sums in Python;
2. **polars**: ``read_ndjson``, the final revision by ``sort``+``unique``, ``group_by``+``agg``.

Both must give the same table (checked). Polars' path does not merge a period's config
versions (``merge_versions`` pools latency samples; no polars expression does that), so it
is only a candidate for files with one version per period. Polars' import is timed in a fresh
interpreter.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import msgspec

from core.stats import LatencyStats, QualityStats, WindowStats
from flows.report import _final, _read
from operators.window_merge import merge_versions

__all__ = ["main"]

Table = dict[tuple[str, str, str, str], tuple[int, int, int, float, float]]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _window(i: int, revision: int) -> WindowStats:
    segment, period = i % 200, i // 200
    kind: Literal["tumbling", "sliding"] = "tumbling" if period % 2 == 0 else "sliding"
    start = T0 + timedelta(minutes=period)
    count = 50 + i % 37
    return WindowStats(
        kind=kind,
        window_start=start,
        window_end=start + timedelta(minutes=1),
        app=f"app-{segment % 20}",
        task=f"task-{segment // 20 % 5}",
        model=f"model-{segment // 100}",
        variant="baseline",
        count=count + revision,
        ok_count=count - 3,
        error_count=3 + revision,
        errors_by_type={"timeout": 3 + revision},
        latency_ms=LatencyStats(400.0, 700.0, 800.0 + i % 97, 950.0, 1200.0),
        ttft_ms=None,
        input_tokens=100 * count,
        output_tokens=20 * count,
        cache_read_tokens=0,
        cost_usd=0.0001 * count,
        cost_per_success_usd=None,
        quality=QualityStats(0, None, None, None, None),
        distinct_prompts=count,
        repeat_ratio=0.0,
        rate_per_s=count / 60,
        peak_rate_per_s=3.0,
        first_event_at=start,
        last_event_at=start + timedelta(seconds=59),
        revision=revision,
    )


def write_windows(path: Path, n: int) -> None:
    """``n`` emissions: windows, and a correction of every fourth one."""
    encoder = msgspec.json.Encoder()
    lines: list[bytes] = []
    i = 0
    while len(lines) < n:
        lines.append(encoder.encode(_window(i, 0)))
        if i % 4 == 0 and len(lines) < n:
            lines.append(encoder.encode(_window(i, 1)))
        i += 1
    path.write_bytes(b"\n".join(lines) + b"\n")


def python_table(path: Path) -> Table:
    """The report's table as :func:`flows.report.write_report` computes it."""
    final = _final(_read(path, WindowStats))
    segments: dict[tuple[str, str, str, str], list[WindowStats]] = defaultdict(list)
    for w in merge_versions(w for w in final if w.kind == "tumbling"):
        segments[(w.app, w.task, w.model, w.variant)].append(w)
    return {
        key: (
            len(ws),
            sum(w.count for w in ws),
            sum(w.error_count for w in ws),
            sum(w.cost_usd for w in ws),
            max(w.latency_ms.p95 for w in ws),
        )
        for key, ws in sorted(segments.items())
    }


def polars_table(path: Path) -> Table:
    """The same table with polars (one config version per period only)."""
    import polars as pl

    key = ["kind", "window_start", "app", "task", "model", "variant", "config_version"]
    frame = (
        pl.read_ndjson(path)
        .sort("revision", maintain_order=True)
        .unique(subset=key, keep="last", maintain_order=True)
        .filter(pl.col("kind") == "tumbling")
        .group_by(["app", "task", "model", "variant"])
        .agg(
            pl.len().alias("windows"),
            pl.col("count").sum(),
            pl.col("error_count").sum(),
            pl.col("cost_usd").sum(),
            pl.col("latency_ms").struct.field("p95").max(),
        )
        .sort(["app", "task", "model", "variant"])
    )
    return {(r[0], r[1], r[2], r[3]): (r[4], r[5], r[6], r[7], r[8]) for r in frame.iter_rows()}


def _same(a: Table, b: Table) -> bool:
    return a.keys() == b.keys() and all(
        a[k][:3] == b[k][:3] and abs(a[k][3] - b[k][3]) <= 1e-9 * max(1.0, abs(a[k][3]))
        and a[k][4] == b[k][4]
        for k in a
    )  # fmt: skip


def _import_cost() -> float:
    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    return min(run("import polars") for _ in range(3)) - min(run("pass") for _ in range(3))


def main() -> None:
    """Time both ways on one file and print their ratio, with polars' import cost."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    polars_import = _import_cost()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "windows.jsonl"
        write_windows(path, args.windows)
        want = python_table(path)
        ways: list[tuple[str, Callable[[Path], Table]]] = [
            ("python (now)", python_table),
            ("polars", polars_table),
        ]
        best = [float("inf")] * len(ways)
        for _ in range(args.repeat):  # the ways take turns: a busy machine slows them alike
            for k, (name, fn) in enumerate(ways):
                start = time.perf_counter()
                got = fn(path)
                best[k] = min(best[k], time.perf_counter() - start)
                assert _same(got, want), f"{name} gives another table"
    base = best[0]
    print(f"{args.windows} window emissions, {len(want)} segments, best of {args.repeat}:")
    for (name, _), took in zip(ways, best, strict=True):
        print(f"  {name}: {took * 1000:.1f} ms, x{base / took:.2f} python")
    with_import = best[1] + polars_import
    print(
        f"  polars + its import ({polars_import * 1000:.0f} ms): {with_import * 1000:.1f} ms, "
        f"x{base / with_import:.2f} python"
    )


if __name__ == "__main__":
    main()
