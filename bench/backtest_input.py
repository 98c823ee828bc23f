"""The backtest's input loading and event-time sort: per-line, batched, and polars.

```sh
.venv/bin/python -m bench.backtest_input --events 300000
.venv/bin/python -m bench.backtest_input --events 1000
```

Writes ``--events`` shuffled events (the throughput bench's events, epoch-ms timestamps, every
``--string-every``-th one an RFC 3339 string with microseconds, every ``--bad-every``-th line
not an event) and times, in one process, each way to turn the file into the backtest's order
(invalid lines first, then events by event time, stable):

1. **per line** (the backtest before): ``decode_event`` on each line, Python's sort of
   ``(time, line number, line)`` tuples;
2. **batched + numpy** (the backtest now, :func:`flows.backtest._ordered`): lines validated in
   batches by :func:`core.record_check.times_of_records`, numpy's stable argsort;
3. **batched + polars sort**: the same validation, polars' ``sort(maintain_order=True)``;
4. **polars read_ndjson + sort**, no validation (a lower bound of what polars could do if it
   were allowed to skip ``decode_event``'s rules, which it is not; only on a file with no
   invalid line, ``--bad-every 0``).

Polars' import is timed once, in a fresh interpreter, against an empty one. Every way must
give the same lines in the same order (checked), except (4), which gives no lines.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.throughput import _event
from core.events import Rejection, decode_event
from flows.backtest import _ordered, _validated

__all__ = ["main", "per_line_order"]


def per_line_order(path: Path) -> list[bytes]:
    """The backtest's order as it was: each line decoded on its own, Python's tuple sort."""
    bad: list[bytes] = []
    timed: list[tuple[float, int, bytes]] = []
    with path.open("rb") as fh:
        for n, line in enumerate(fh):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            event = decode_event(raw)
            if isinstance(event, Rejection):
                bad.append(raw)
            else:
                timed.append((event.timestamp.timestamp(), n, raw))
    timed.sort()
    return bad + [raw for _, _, raw in timed]


def polars_sorted(path: Path) -> list[bytes]:
    """Batched validation as the backtest, then polars' stable sort of the event times."""
    import polars as pl

    bad, events, times = _validated(path)
    frame = pl.DataFrame(
        {"t": times, "i": range(len(times))}, schema={"t": pl.Float64, "i": pl.Int64}
    )
    order = frame.sort("t", maintain_order=True)["i"].to_list()
    return bad + [events[i] for i in order]


def polars_unvalidated(path: Path) -> int:
    """``read_ndjson`` and a sort by timestamp: no validation (a lower bound, not a candidate)."""
    import polars as pl

    frame = pl.read_ndjson(path).sort("timestamp", maintain_order=True)
    return frame.height


def write_input(path: Path, n: int, string_every: int, bad_every: int, seed: int = 1) -> None:
    """``n`` shuffled events as the throughput bench makes them, with strings and bad lines."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        raw = _event(i, rng, 1000)[1]
        if bad_every and i % bad_every == 0:
            raw = raw[: len(raw) // 2]  # cut short: not JSON
        elif string_every and i % string_every == 0:
            event = json.loads(raw)
            event["timestamp"] = (
                f"2026-11-29T10:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}{i % 7}00Z"
            )
            raw = json.dumps(event, separators=(",", ":")).encode()
        lines.append(raw)
    rng.shuffle(lines)
    path.write_bytes(b"\n".join(lines) + b"\n")


def _import_cost() -> tuple[float, float]:
    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    empty = min(run("pass") for _ in range(3))
    with_polars = min(run("import polars") for _ in range(3))
    return empty, with_polars - empty


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _interleaved(
    ways: list[tuple[str, Callable[[], object]]], repeat: int, want: object
) -> list[float]:
    """Each way's best time, the ways taking turns (a busy machine slows them alike)."""
    best = [float("inf")] * len(ways)
    for _ in range(repeat):
        for k, (name, fn) in enumerate(ways):
            start = time.perf_counter()
            got = fn()
            best[k] = min(best[k], time.perf_counter() - start)
            assert got == want, f"{name} gives another order"
    return best


def main() -> None:
    """Time each way on one file and print the ratios against the per-line way."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--string-every", type=int, default=10)
    parser.add_argument("--bad-every", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    empty, polars_import = _import_cost()
    print(
        f"interpreter start {empty * 1000:.0f} ms; import polars adds {polars_import * 1000:.0f} ms"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.jsonl"
        write_input(path, args.events, args.string_every, args.bad_every)
        want = per_line_order(path)
        ways: list[tuple[str, Callable[[], object]]] = [
            ("per line (before)", lambda: per_line_order(path)),
            ("batched + numpy (now)", lambda: _ordered(path)),
            ("batched + polars sort", lambda: polars_sorted(path)),
        ]
        best = _interleaved(ways, args.repeat, want)
        base = best[0]
        print(f"{args.events} events, best of {args.repeat} interleaved runs:")
        for (name, _), took in zip(ways, best, strict=True):
            print(
                f"  {name}: {took:.3f} s ({took / args.events * 1e6:.2f} µs/event), "
                f"x{base / took:.2f} the per-line way"
            )
        if not args.bad_every:
            took, _ = _best(lambda: polars_unvalidated(path), args.repeat)
            print(f"  polars read_ndjson + sort, NOT validated: {took:.3f} s, x{base / took:.2f}")
        keys = np.random.default_rng(1).integers(0, 10**6, args.events).astype(np.float64) / 1000

        import polars as pl

        sort_ways: list[tuple[str, Callable[[], object]]] = [
            (
                "python tuple sort",
                lambda: sorted(zip(keys.tolist(), range(len(keys)), strict=True)),
            ),
            ("numpy stable argsort", lambda: np.argsort(keys, kind="stable")),
            (
                "polars sort maintain_order",
                lambda: pl.DataFrame({"t": keys}).with_row_index().sort("t", maintain_order=True),
            ),
        ]
        print("  the sort alone:")
        for name, fn in sort_ways:
            took, _ = _best(fn, args.repeat)
            print(f"    {name}: {took * 1000:.1f} ms")


if __name__ == "__main__":
    main()
