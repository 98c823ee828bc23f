"""Parse human durations such as ``60s``, ``10min``, ``1h``, ``1h30m`` or ``250ms``."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["format_duration", "parse_duration"]

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_MAX_SECONDS = 100 * 365 * 86400.0  # a century: beyond it, a typo
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d)")


def parse_duration(value: str | int | float) -> timedelta:
    """Turn ``value`` into a :class:`timedelta`.

    Args:
        value: A number of seconds, or a string of one or more ``<number><unit>`` parts with
            units ``ms``, ``s``/``sec``, ``m``/``min``, ``h``, ``d`` (``"1h30m"``).

    Returns:
        The duration.

    Raises:
        ValueError: When the value is negative, a bool, or not in that format.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative: {value!r}")
        if not value < _MAX_SECONDS:
            raise ValueError(f"duration too long: {value!r} (at most {_MAX_SECONDS:.0f}s)")
        return timedelta(seconds=value)
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ValueError("empty duration")
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"not a duration: {value!r} (use e.g. 60s, 10min, 1h, 1h30m, 250ms)")
    if total >= _MAX_SECONDS:
        raise ValueError(f"duration too long: {value!r} (at most {_MAX_SECONDS:.0f}s)")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """Format a duration the way :func:`parse_duration` reads it (``90s`` → ``"90s"``)."""
    ms = round(value.total_seconds() * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"
