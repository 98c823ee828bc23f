"""How the console's templates show numbers, money, shares, durations and times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = ["FILTERS", "change", "hours", "number", "percent", "usd", "when"]


def number(value: float | None, digits: int = 3) -> str:
    """``digits`` significant digits; scientific notation for the very large and very small."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 10 ** -(digits + 2):
        return f"{value:.{digits}e}"
    return f"{value:.{digits}g}"


def percent(value: float | None, digits: int = 1) -> str:
    """A share (0..1) as a percentage."""
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def usd(value: float | None) -> str:
    """US dollars; six decimals below a cent (costs per call are small)."""
    if value is None:
        return "—"
    return f"${value:.6f}" if abs(value) < 0.01 else f"${value:,.4f}"


def change(value: float | None) -> str:
    """An expected change: rounding noise of a zero difference (1e-16) shows as 0."""
    return number(0.0 if value is not None and abs(value) < 1e-12 else value)


def hours(value: float | None) -> str:
    """A duration given in hours, in the unit that reads best."""
    if value is None:
        return "—"
    if value < 1 / 60:
        return "under a minute"
    if value < 1:
        return f"{value * 60:.0f} min"
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} days"


def when(value: datetime | None) -> str:
    """A UTC time to the second."""
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


#: The Jinja2 filters of the console's templates, by name.
FILTERS: dict[str, Callable[..., Any]] = {
    "number": number,
    "change": change,
    "percent": percent,
    "usd": usd,
    "when": when,
    "hours": hours,
}
