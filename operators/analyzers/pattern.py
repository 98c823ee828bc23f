"""Pattern analyzer: traffic profiles (seasonality), bursts, trend, cache and batching potential.

Each (app, task) of a period is judged from its windows across models and variants. The task
rate is the sum of the segments' ``rate_per_s``; its calls the sum of their ``count``.

* **Profiles.** Per hour of day and per day of week (UTC of ``window_start``) a bucket keeps an
  EWMA, over days, of the mean task rate of that day's windows in the bucket (the day being
  gathered counts provisionally). Every window is learned, bursts included: a profile describes
  the traffic. :meth:`PatternAnalyzer.expected_rate` is the seasonality for the anomaly analyzer:
  the hour's value, scaled by the weekday's share once all seven weekdays are known; ``None``
  until the hour was seen on ``profile_min_days`` distinct days.
* **Burst** (warning). After ``warmup_windows`` learned windows, the rate exceeds
  ``burst_factor`` times the reference ``max(moving average, expected rate)``: the moving
  average is the mean rate of the last ``baseline_windows`` unflagged windows, so a daily peak
  the profile expects is not a burst. A burst lasting more than ``burst_max_windows`` windows
  is a level shift: its windows are learned again.
* **Trend** (info ``traffic_trend``). Over the last ``baseline_windows`` unflagged windows,
  calls per window are regressed on the window index (least squares, t-test of the slope); a
  trend is significant when ``p < trend_p_value`` and the fitted change over the span is at least
  ``trend_min_change`` of the mean. It is reported once per direction: a rising trend, then
  only a falling one, and so on.
* **Cache potential** (info). The count-weighted repeat ratio of ``prompt_hash`` is at least
  ``cache.repeat_ratio``; the estimated hit rate of a cache living one window is that ratio (a
  lower bound for a longer TTL). **Batching potential** (info): the peak rate (max over
  segments) is at least ``batching_min_peak_rate``, calls are small (mean output tokens at most
  ``batching_max_output_tokens``) and the p95 latency plus a batching wait of
  ``batching_max_wait_ms`` stays within the p95 SLO. Both are reported once, then again only
  after ``renotify_windows`` windows *and* a material change: the repeat ratio moved by at least
  ``cache.change`` (absolute), the peak rate by at least ``batching_change`` (relative).

No insight is raised for a task with fewer than ``min_samples`` calls in the period.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
from scipy import special

from core.insights import AnalyzerName, Insight, WindowGroup
from core.settings import AnalyzerSettings
from core.stats import WindowStats
from operators.analyzers.base import insight_maker

__all__ = ["PatternAnalyzer", "PatternState", "ProfileBucket", "TaskPattern"]

#: The statistic behind each insight kind this analyzer emits (``evidence["statistic"]``).
STATISTICS: dict[str, str] = {
    "burst": "ratio_to_reference",
    "traffic_trend": "slope_t_test",
    "cache_potential": "repeat_ratio",
    "batching_potential": "peak_rate",
}
_insight = insight_maker("pattern", STATISTICS)


@dataclass(frozen=True, slots=True)
class ProfileBucket:
    """EWMA over days of the mean rate (calls/s) seen in one hour of day or day of week."""

    prev: float | None = None  # EWMA through the last completed day
    value: float = 0.0  # current estimate, the day being gathered included
    day: int = -1  # ordinal of the day being gathered
    day_sum: float = 0.0
    day_n: int = 0
    days: int = 0  # distinct days seen

    def add(self, day: int, rate: float, alpha: float) -> ProfileBucket:
        """Learn one window's rate on day ``day``."""
        b = self
        if day != b.day:
            b = ProfileBucket(
                prev=b.value if b.days else None, value=b.value, day=day, days=b.days + 1
            )
        s, n = b.day_sum + rate, b.day_n + 1
        value = s / n if b.prev is None else (1 - alpha) * b.prev + alpha * s / n
        return replace(b, day_sum=s, day_n=n, value=value)


_HOURS = (ProfileBucket(),) * 24
_WEEKDAYS = (ProfileBucket(),) * 7


@dataclass(frozen=True, slots=True)
class TaskPattern:
    """What the analyzer remembers of one (app, task); bounded, never mutated."""

    hours: tuple[ProfileBucket, ...] = _HOURS
    weekdays: tuple[ProfileBucket, ...] = _WEEKDAYS
    rates: tuple[float, ...] = ()  # rate of recent unflagged windows (moving average)
    counts: tuple[tuple[int, int], ...] = ()  # (window index, calls) of recent unflagged windows
    burst_streak: int = 0
    trend_direction: int = 0  # last reported: +1 rising, -1 falling, 0 none yet
    windows: int = 0  # periods seen
    cache_reported: tuple[int, float] | None = None  # (window index, repeat ratio)
    batching_reported: tuple[int, float] | None = None  # (window index, peak rate)


@dataclass(frozen=True, slots=True)
class PatternState:
    """The pattern state: one :class:`TaskPattern` per (app, task). Picklable."""

    tasks: dict[tuple[str, str], TaskPattern] = field(default_factory=dict)


def _weighted(pairs: Sequence[tuple[float, int]]) -> float:
    total = sum(n for _, n in pairs)
    return sum(v * n for v, n in pairs) / total if total > 0 else 0.0


@dataclass(frozen=True)
class _Fit:
    slope: float
    intercept: float
    rvalue: float
    pvalue: float


def _linregress(xs: Sequence[float], ys: Sequence[float]) -> _Fit:
    """Least-squares line and the two-sided p-value of its slope (as scipy's linregress).

    Written out with numpy and ``scipy.special`` because importing ``scipy.stats`` costs the
    dataflow process a second at start-up.
    """
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    n = len(x)
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    if sxx == 0.0 or syy == 0.0:
        return _Fit(0.0, float(y.mean()), 0.0, 1.0)
    slope = sxy / sxx
    r = max(-1.0, min(1.0, sxy / (sxx * syy) ** 0.5))
    df = n - 2
    if df <= 0 or abs(r) >= 1.0:
        return _Fit(slope, float(y.mean() - slope * x.mean()), r, 0.0 if abs(r) >= 1.0 else 1.0)
    t = r * (df / ((1.0 - r) * (1.0 + r))) ** 0.5
    p = 2.0 * float(special.stdtr(df, -abs(t)))
    return _Fit(slope, float(y.mean() - slope * x.mean()), r, p)


class PatternAnalyzer:
    """Traffic profiles, bursts, trends, cache and batching potential (see the module doc).

    Insight kinds: ``burst`` (warning), ``traffic_trend``, ``cache_potential`` and
    ``batching_potential`` (info).
    """

    name: AnalyzerName = "pattern"

    def __init__(self, settings: AnalyzerSettings) -> None:
        """Keep the thresholds (``analyzers.*`` settings).

        Args:
            settings: ``min_samples``, ``warmup_windows``, ``baseline_windows``, the p95 SLO
                (``latency_p95_warning_ms``, the latency budget of batching) and the pattern
                thresholds: ``burst_factor``, ``burst_max_windows``, ``profile_alpha``,
                ``profile_min_days``, ``trend_p_value``, ``trend_min_change``,
                ``cache.repeat_ratio``, ``cache.change``, ``batching_min_peak_rate``,
                ``batching_max_output_tokens``, ``batching_max_wait_ms``, ``batching_change``,
                ``renotify_windows``.
        """
        self._s = settings

    def initial_state(self) -> PatternState:
        """The state before the first period: no task has a profile."""
        return PatternState()

    def expected_rate(self, state: PatternState, app: str, task: str, at: datetime) -> float | None:
        """The seasonal rate (calls/s) the profiles expect for ``task`` at ``at``.

        Args:
            state: A state returned by :meth:`analyze`.
            app: The app.
            task: The task.
            at: The moment (a window start), aware; hour and weekday are taken in UTC.

        Returns:
            The hour-of-day value, times the weekday's share of the mean weekday once all
            seven weekdays were seen on ``profile_min_days`` days; ``None`` while the hour was
            seen on fewer than ``profile_min_days`` distinct days.
        """
        tp = state.tasks.get((app, task))
        return None if tp is None else self._expected(tp, at)

    def _expected(self, tp: TaskPattern, at: datetime) -> float | None:
        at = at.astimezone(UTC)
        hour = tp.hours[at.hour]
        if hour.days < max(self._s.profile_min_days, 1):
            return None
        if all(b.days >= self._s.profile_min_days for b in tp.weekdays):
            mean = statistics.fmean(b.value for b in tp.weekdays)
            if mean > 0:
                return hour.value * tp.weekdays[at.weekday()].value / mean
        return hour.value

    def analyze(
        self, state: PatternState, group: WindowGroup
    ) -> tuple[PatternState, list[Insight]]:
        """Judge every task of one period, then learn it.

        Args:
            state: The state returned for the previous period (or :meth:`initial_state`).
            group: All windows of one app for one period.

        Returns:
            The next state and the insights of this period.
        """
        tasks = dict(state.tasks)
        insights: list[Insight] = []
        for task, windows in sorted(group.tasks().items()):
            tp = tasks.get((group.app, task), TaskPattern())
            count = sum(w.count for w in windows)
            rate = sum(w.rate_per_s for w in windows)
            judge = count >= max(self._s.min_samples, 1)
            burst = self._burst(group, task, tp, rate, count) if judge else None
            learn = burst is None or tp.burst_streak >= self._s.burst_max_windows
            keep = max(self._s.baseline_windows, 1)
            at = group.window_start.astimezone(UTC)
            day = at.toordinal()
            a = self._s.profile_alpha
            hours, wd = list(tp.hours), list(tp.weekdays)
            hours[at.hour] = hours[at.hour].add(day, rate, a)
            wd[at.weekday()] = wd[at.weekday()].add(day, rate, a)
            tp = replace(
                tp,
                hours=tuple(hours),
                weekdays=tuple(wd),
                rates=(*tp.rates, rate)[-keep:] if learn else tp.rates,
                counts=(*tp.counts, (tp.windows, count))[-keep:] if learn else tp.counts,
                burst_streak=0 if burst is None else tp.burst_streak + 1,
                windows=tp.windows + 1,
            )
            found = [burst]
            if judge:
                tp, trend = self._trend(group, task, tp, count)
                tp, cache = self._cache(group, task, tp, windows, count)
                tp, batching = self._batching(group, task, tp, windows, count)
                found += [trend, cache, batching]
            tasks[(group.app, task)] = tp
            insights += [i for i in found if i is not None]
        return PatternState(tasks=tasks), insights

    def _burst(
        self, group: WindowGroup, task: str, tp: TaskPattern, rate: float, count: int
    ) -> Insight | None:
        if len(tp.rates) < max(self._s.warmup_windows, 1):
            return None
        average = statistics.fmean(tp.rates)
        seasonal = self._expected(tp, group.window_start)
        reference = max(average, seasonal or 0.0)
        if reference <= 0 or rate <= self._s.burst_factor * reference:
            return None
        ratio = rate / reference
        return _insight(
            group, task, "burst", "warning", "rate_per_s", rate, reference,
            ratio / self._s.burst_factor,
            f"traffic of {task} is {rate:.3g} calls/s ({count} calls), {ratio:.1f}x its "
            f"reference of {reference:.3g} calls/s (moving average {average:.3g}, expected at "
            f"this hour {'n/a' if seasonal is None else f'{seasonal:.3g}'}).",
            {
                "value": rate, "samples": count, "moving_average": average,
                "moving_average_windows": len(tp.rates),
                "expected_rate": "n/a" if seasonal is None else seasonal,
                "reference": reference, "ratio": ratio, "burst_factor": self._s.burst_factor,
                "threshold": self._s.burst_factor * reference, "min_samples": self._s.min_samples,
            },
        )  # fmt: skip

    def _trend(
        self, group: WindowGroup, task: str, tp: TaskPattern, count: int
    ) -> tuple[TaskPattern, Insight | None]:
        n = len(tp.counts)
        if n < max(self._s.baseline_windows, 3):
            return tp, None
        xs, ys = [float(x) for x, _ in tp.counts], [float(y) for _, y in tp.counts]
        mean = statistics.fmean(ys)
        if mean <= 0 or len(set(ys)) == 1:
            return tp, None
        fit = _linregress(xs, ys)
        slope, p = float(fit.slope), float(fit.pvalue)
        change = slope * (xs[-1] - xs[0]) / mean
        direction = 1 if change > 0 else -1
        if p >= self._s.trend_p_value or abs(change) < self._s.trend_min_change:
            return tp, None
        if direction == tp.trend_direction:
            return tp, None
        word = "rising" if direction > 0 else "falling"
        return replace(tp, trend_direction=direction), _insight(
            group, task, "traffic_trend", "info", "count", slope, mean,
            abs(change) / self._s.trend_min_change,
            f"traffic of {task} is {word}: {slope:+.3g} calls per window "
            f"({100 * change:+.0f} % over {n} windows, mean {mean:.1f} calls, p = {p:.2g}).",
            {
                "slope": slope, "intercept": float(fit.intercept), "p_value": p,
                "r": float(fit.rvalue), "change": change, "mean": mean, "windows": n,
                "samples": count, "p_value_threshold": self._s.trend_p_value,
                "min_change": self._s.trend_min_change, "min_samples": self._s.min_samples,
            },
        )  # fmt: skip

    def _due(self, tp: TaskPattern, last: tuple[int, float] | None, changed: bool) -> bool:
        return last is None or (tp.windows - 1 - last[0] >= self._s.renotify_windows and changed)

    def _cache(
        self, group: WindowGroup, task: str, tp: TaskPattern, windows: Sequence[WindowStats],
        count: int,
    ) -> tuple[TaskPattern, Insight | None]:  # fmt: skip
        ratio = _weighted([(w.repeat_ratio, w.count) for w in windows])
        last = tp.cache_reported
        changed = last is not None and abs(ratio - last[1]) >= self._s.cache.change
        if ratio < self._s.cache.repeat_ratio or not self._due(tp, last, changed):
            return tp, None
        distinct = sum(w.distinct_prompts for w in windows)
        limit = self._s.cache.repeat_ratio
        return replace(tp, cache_reported=(tp.windows - 1, ratio)), _insight(
            group, task, "cache_potential", "info", "repeat_ratio", ratio,
            limit, ratio / limit if limit > 0 else ratio,
            f"{100 * ratio:.0f} % of the {count} calls of {task} repeat a prompt "
            f"({distinct} distinct): a cache would hit about {100 * ratio:.0f} % of calls.",
            {
                "repeat_ratio": ratio, "estimated_hit_rate": ratio, "distinct_prompts": distinct,
                "samples": count, "calls_saved": ratio * count,
                "threshold": self._s.cache.repeat_ratio, "change_threshold": self._s.cache.change,
                "previous_ratio": "n/a" if last is None else last[1],
                "min_samples": self._s.min_samples,
            },
        )  # fmt: skip

    def _batching(
        self, group: WindowGroup, task: str, tp: TaskPattern, windows: Sequence[WindowStats],
        count: int,
    ) -> tuple[TaskPattern, Insight | None]:  # fmt: skip
        peak = max(w.peak_rate_per_s for w in windows)
        out_tokens = sum(w.output_tokens for w in windows) / count
        p95 = _weighted([(w.latency_ms.p95, w.count) for w in windows])
        budget = self._s.latency_p95_warning_ms - p95
        if (
            peak < self._s.batching_min_peak_rate
            or out_tokens > self._s.batching_max_output_tokens
            or budget < self._s.batching_max_wait_ms
        ):
            return tp, None
        last = tp.batching_reported
        changed = last is not None and abs(peak / last[1] - 1) >= self._s.batching_change
        if not self._due(tp, last, changed):
            return tp, None
        batch = peak * self._s.batching_max_wait_ms / 1000
        return replace(tp, batching_reported=(tp.windows - 1, peak)), _insight(
            group, task, "batching_potential", "info", "peak_rate_per_s", peak,
            self._s.batching_min_peak_rate, peak / self._s.batching_min_peak_rate,
            f"{task} peaks at {peak:.3g} calls/s of {out_tokens:.0f} output tokens each, p95 "
            f"{p95:.0f} ms leaves {budget:.0f} ms of the {self._s.latency_p95_warning_ms:.0f} ms "
            f"SLO: a {self._s.batching_max_wait_ms:.0f} ms batch would hold about "
            f"{batch:.1f} calls.",
            {
                "peak_rate_per_s": peak, "mean_output_tokens": out_tokens, "latency_p95_ms": p95,
                "latency_budget_ms": budget, "estimated_batch_size": batch, "samples": count,
                "min_peak_rate": self._s.batching_min_peak_rate,
                "max_output_tokens": self._s.batching_max_output_tokens,
                "max_wait_ms": self._s.batching_max_wait_ms,
                "slo_ms": self._s.latency_p95_warning_ms,
                "change_threshold": self._s.batching_change,
                "previous_peak_rate": "n/a" if last is None else last[1],
                "min_samples": self._s.min_samples,
            },
        )  # fmt: skip
