"""The polars benches compare like with like: every way gives the same answer on their inputs."""

from __future__ import annotations

from pathlib import Path

from bench.backtest_input import per_line_order, polars_sorted, write_input
from bench.report_aggregation import polars_table, python_table, write_windows
from flows.backtest import _ordered


def test_every_input_order_is_the_per_line_order(tmp_path: Path) -> None:
    path = tmp_path / "input.jsonl"
    write_input(path, 2000, string_every=7, bad_every=50)
    want = per_line_order(path)
    assert len(want) == 2000
    assert _ordered(path) == want
    assert polars_sorted(path) == want


def test_the_report_table_is_the_same_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    write_windows(path, 1000)
    want = python_table(path)
    got = polars_table(path)
    assert len(want) == 200
    assert got.keys() == want.keys()
    for key, (windows, calls, errors, cost, p95) in want.items():
        assert got[key][:3] == (windows, calls, errors)
        assert abs(got[key][3] - cost) <= 1e-12
        assert got[key][4] == p95
