"""What the anomaly analyzer knows of one metric of one task, apart from its incident.

Two things a metric learns about itself, whatever its incidents:

* **its cadence**: the gaps between the periods it was measured in. A series sampled every hour
  on 5-minute periods is measured in one period of 12; spans counted in periods (the end of an
  incident) are then counted in its own measurements, scaled by that share, so they keep their
  length in time (:func:`record_cadence`);
* **its daily profile** (latency only): an hour-of-day EWMA of the value. While the metric is
  judged on raw values, every period whose hour the profile knows adds ``|value - profile|`` and
  ``|value - median of the history|`` to two sums; once they cover a day of the metric's own
  measurements and the profile's error is below ``season_gain`` times the flat one (and no
  incident is open), the metric switches to residuals from the profile and learns them afresh
  (:class:`DailyProfile`).

The state itself (:class:`MetricState`) also carries what the incident machine
(:mod:`operators.analyzers.anomaly_incident`) learns; it is one frozen record per metric so that
the analyzer's state stays a plain picklable dict.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from core.insights import WindowGroup
from operators.analyzers.pattern import ProfileBucket

__all__ = ["DailyProfile", "MetricState", "period_seconds", "record_cadence"]

_DAY_S = 86_400.0
_GAPS_KEPT = 15  # gaps between measured periods whose median is a metric's cadence
_HOURS = (ProfileBucket(),) * 24


@dataclass(frozen=True, slots=True)
class MetricState:
    """What one metric of one task has learned, and its open incident. Never mutated."""

    history: tuple[float, ...] = ()  # learned residuals, oldest first
    flagged: tuple[float, ...] = ()  # residuals of the open incident's flagged periods
    seen: tuple[float, ...] = ()  # every judged residual (flagged too), oldest first
    levels: tuple[float, ...] = ()  # median of the last level_windows residuals, per period
    spreads: tuple[float, ...] = ()  # step spread of the last spread_windows residuals, per period
    starts: tuple[float, ...] = ()  # epoch seconds of recent would-be incident starts
    cusum_up: float = 0.0
    cusum_down: float = 0.0
    run_up: int = 0  # periods since cusum_up was last 0 (the excursion so far)
    run_down: int = 0
    started: datetime | None = None  # window_start of the open incident, None when calm
    calm: int = 0  # consecutive calm periods inside the open incident
    seasonal: bool = False  # residuals are from a seasonal expectation (else raw values)
    last_t: float | None = None  # epoch seconds of the last period this metric was measured in
    gaps: tuple[float, ...] = ()  # seconds between its recent measured periods (the cadence)
    profile: tuple[ProfileBucket, ...] = ()  # hour-of-day EWMA of the value (latency only)
    err_season: float = 0.0  # sum of |value - profile| while the profile knew the hour
    err_flat: float = 0.0  # sum of |value - median of the history| over the same periods
    compared: int = 0  # periods in those sums

    def relearning(self) -> MetricState:
        """A fresh state on seasonal residuals that keeps the cadence and the profile."""
        return MetricState(seasonal=True, profile=self.profile, last_t=self.last_t, gaps=self.gaps)


def period_seconds(group: WindowGroup) -> float:
    """The length of the group's period in seconds (at least 1 ns)."""
    return max((group.window_end - group.window_start).total_seconds(), 1e-9)


def record_cadence(ms: MetricState, group: WindowGroup) -> tuple[MetricState, float]:
    """Record this period's time; return the state and the share of periods measured.

    The share is the period length over the median gap of the last measurements (1.0 for a
    metric measured every period, 1/12 for an hourly one on 5-minute periods).
    """
    t = group.window_start.timestamp()
    period_s = period_seconds(group)
    gaps = ms.gaps if ms.last_t is None else (*ms.gaps, t - ms.last_t)[-_GAPS_KEPT:]
    ms = replace(ms, last_t=t, gaps=gaps)
    if not gaps:
        return ms, 1.0
    return ms, min(1.0, period_s / max(statistics.median(gaps), period_s))


def _day_of_measurements(ms: MetricState, group: WindowGroup) -> int:
    period_s = period_seconds(group)
    cadence = statistics.median(ms.gaps) if ms.gaps else period_s
    return max(1, round(_DAY_S / max(cadence, period_s)))


class DailyProfile:
    """A metric's own hour-of-day profile, used as its expectation once it predicts better."""

    def __init__(self, *, alpha: float, min_days: int, gain: float, warmup: int) -> None:
        """Keep the thresholds.

        Args:
            alpha: EWMA weight of a new day in an hour's bucket (``profile_alpha``).
            min_days: Days an hour must have been seen before it is known (``profile_min_days``).
            gain: The profile's error over the flat error below which the metric turns seasonal
                (``anomaly.season_gain``; 0 is off).
            warmup: Learned residuals before the flat error is measured
                (``anomaly.warmup_windows``).
        """
        self._alpha, self._min_days = alpha, max(min_days, 1)
        self._gain, self._warmup = gain, warmup

    @property
    def enabled(self) -> bool:
        """Whether the profile is ever used (``gain`` above 0)."""
        return self._gain > 0

    def expectation(
        self, ms: MetricState, group: WindowGroup, value: float
    ) -> tuple[MetricState, float | None]:
        """The state and the expectation of ``value``.

        0 while the metric is raw (the comparison sums are updated, and the metric may turn
        seasonal here); once seasonal, the profile's value, or None when it does not know the
        hour.
        """
        at = group.window_start.astimezone(UTC)
        bucket = ms.profile[at.hour] if ms.profile else None
        expected = bucket.value if bucket is not None and bucket.days >= self._min_days else None
        if ms.seasonal:
            return ms, expected
        if expected is None or len(ms.history) < self._warmup:
            return ms, 0.0
        ms = replace(
            ms,
            err_season=ms.err_season + abs(value - expected),
            err_flat=ms.err_flat + abs(value - statistics.median(ms.history)),
            compared=ms.compared + 1,
        )
        if (
            ms.started is None
            and ms.compared >= _day_of_measurements(ms, group)
            and ms.err_season < self._gain * ms.err_flat
        ):
            return ms.relearning(), expected
        return ms, 0.0

    def learn(self, ms: MetricState, group: WindowGroup, value: float) -> MetricState:
        """Add the period's value to its hour's bucket (after it was judged)."""
        at = group.window_start.astimezone(UTC)
        hours = list(ms.profile or _HOURS)
        hours[at.hour] = hours[at.hour].add(at.toordinal(), value, self._alpha)
        return replace(ms, profile=tuple(hours))
