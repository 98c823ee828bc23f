"""Exponential backoff between restarts of a failed service."""

from __future__ import annotations

__all__ = ["MAX_DELAY_S", "restart_delay"]

#: The longest wait between two restarts; past its restart budget a service that retries for
#: ever (the processor) waits this long between attempts.
MAX_DELAY_S = 60.0

_MAX_EXPONENT = 1000  # 2.0 ** 1024 overflows a float; any cap is reached long before.


def restart_delay(attempt: int, base: float = 1.0, cap: float = MAX_DELAY_S) -> float:
    """Return the wait before restart number ``attempt``: ``min(base * 2**attempt, cap)``.

    Args:
        attempt: Zero for the first restart, one for the second, and so on.
        base: The delay before the first restart, in seconds.
        cap: The longest delay, in seconds.

    Returns:
        The delay in seconds.

    Raises:
        ValueError: When ``attempt`` is negative or ``base``/``cap`` is negative.
    """
    if attempt < 0:
        raise ValueError(f"attempt must not be negative: {attempt}")
    if base < 0 or cap < 0:
        raise ValueError(f"base and cap must not be negative: base={base}, cap={cap}")
    if attempt > _MAX_EXPONENT:
        return cap
    return min(base * 2.0**attempt, cap)
