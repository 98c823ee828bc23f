from __future__ import annotations

from datetime import UTC, datetime

from api.rest.console.formatting import change, hours, number, percent, usd, when


def test_numbers_keep_tiny_p_values_and_zero_rounding_noise() -> None:
    assert number(None) == "—"
    assert number(0.0) == "0"
    assert number(0.84763) == "0.848"
    assert number(5.448e-30) == "5.448e-30"  # a p-value is never shown as 0
    assert number(123456.0) == "1.235e+05"
    assert number(0.0095312, 4) == "0.009531"
    assert change(-1.11e-16) == "0"
    assert change(-94.2) == "-94.2"
    assert change(None) == "—"


def test_shares_money_durations_and_times() -> None:
    assert percent(0.0046, 2) == "0.46 %"
    assert percent(None) == "—"
    assert usd(0.0036254) == "$0.003625"
    assert usd(12.5) == "$12.5000"
    assert hours(0.0) == "under a minute"
    assert hours(0.25) == "15 min"
    assert hours(2.46) == "2.5 h"
    assert hours(72.0) == "3.0 days"
    assert hours(None) == "—"
    assert when(datetime(2026, 12, 7, 20, 1, 2, tzinfo=UTC)) == "2026-12-07 20:01:02 UTC"
