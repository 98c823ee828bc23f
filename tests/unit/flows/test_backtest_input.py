"""The backtest's input order: exactly the per-line definition, on files with every kind of line."""

from __future__ import annotations

import json
import random
from pathlib import Path

from core.events import Rejection, decode_event
from flows.backtest import BATCH, _ordered


def _reference(path: Path) -> list[bytes]:
    """The definition: each non-blank line decoded on its own, invalid lines first in file order,
    then events by (event time, line number)."""
    bad: list[bytes] = []
    timed: list[tuple[float, int, bytes]] = []
    for n, line in enumerate(path.read_bytes().splitlines(keepends=True)):
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


def _line(rng: random.Random, i: int) -> bytes:
    at = 1_795_946_400_000 + rng.randrange(50)  # few distinct times: many ties
    event: dict[str, object] = {
        "event_id": f"e{i}",
        "timestamp": at,
        "app": f"app-{i % 3}",
        "model": "m",
        "latency_ms": 10.0,
        "input_tokens": 1,
        "output_tokens": 1,
    }
    kind = rng.randrange(12)
    if kind == 0:
        event["timestamp"] = f"2026-11-29T10:00:00.{rng.randrange(50):03d}{rng.randrange(3)}Z"
    elif kind == 1:
        event["timestamp"] = "2026-11-29T11:00:00.020+01:00"
    elif kind == 2:
        event.update(kind="feedback", request_id="r", quality=0.5)
    elif kind == 3:
        del event["model"]  # not an event
    elif kind == 4:
        event["timestamp"] = "yesterday"
    elif kind == 5:
        return b"{not json"
    elif kind == 6:
        return b"   "  # blank: skipped
    elif kind == 7:
        return b'{"app": "\xff"}'  # not UTF-8
    return json.dumps(event).encode()


def test_order_is_the_per_line_definition_across_batches(tmp_path: Path) -> None:
    rng = random.Random(20)
    lines = [_line(rng, i) for i in range(2 * BATCH + 123)]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\r\n".join(lines[:100]) + b"\n" + b"\n".join(lines[100:]) + b"\n\n")
    got = _ordered(path)
    assert got == _reference(path)
    assert len(got) == sum(1 for line in lines if line.strip())


def test_an_empty_file_orders_to_nothing(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n \n")
    assert _ordered(path) == []
