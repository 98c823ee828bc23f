"""Anomaly analyzer: robust residual detection plus CUSUM change detection, per (app, task).

This module is the incident lifecycle (when a judged period starts, holds or ends an incident,
what is learned); the detectors it asks are :mod:`operators.analyzers.anomaly_detectors`, the
drift detectors beside it :mod:`operators.analyzers.drift`.

Four metrics are followed per task, each as one number per period:

* ``latency_ms.p95``: the count-weighted mean of the segments' p95 (as the performance analyzer;
  p95 is where incidents show first, and the MAD scale absorbs its extra noise);
* ``error_rate``: errors / calls, judged only with at least ``settings.min_samples`` calls;
* ``cost_usd_per_s``: spend of the period divided by its length;
* ``calls``: calls in the period (traffic).

**Seasonality.** The analyzer keeps its own :class:`PatternAnalyzer` profiles (fed every period
after it is judged, so a period never shapes its own expectation). ``calls`` is judged against
``expected_rate * period length`` once the profile knows the hour (``profile_min_days``): the
metric then starts learning residuals afresh (after any open incident ends), and skips periods
whose hour the profile does not know yet. Before that, and for the other metrics, the expectation
is 0 (raw values). A ``seasonal_expectation`` hook, when given, replaces all of this.

**Detector.** The residual ``r = value - expected`` is compared with the median of the last
``history_windows`` learned residuals, scaled by ``1.4826 * MAD`` with floors (``rel_floor`` of
the baseline level; the binomial standard error for the error rate; the Poisson one for calls).
When over half the history equals its median (MAD 0: a mostly idle series), the spread is
``1.2533 *`` the mean absolute deviation instead. ``|z|`` is the score. Nothing is judged
before ``warmup_windows`` learned residuals, nor in periods with fewer than ``min_calls`` calls.

**Incidents.** A period starts an incident in three ways, whichever comes first:

* a spike: ``|z| >= z_warning`` and the residual is a new extreme (beyond every residual of the
  last ``novelty_windows`` periods, flagged ones included, so a recurring spike of a known height
  is not reported again);
* a level shift: a two-sided CUSUM of the clipped z (allowance ``cusum_k``, running in calm
  periods too) reaches ``cusum_h`` in one direction, and the level (median of the last
  ``level_windows`` residuals) is beyond, in that direction, every level of the last
  ``novelty_windows`` periods before that CUSUM's excursion began (its own levels do not count:
  a moderate shift's median settles before its CUSUM reaches ``cusum_h``). This catches a
  sustained change that is smaller than an earlier spike, or made of moderate z's, while a
  daily job that recurs at a known level stays quiet.
* a spread change: the spread of the last ``spread_windows`` residuals (``1.4826 *`` the median
  step between consecutive periods ``/ sqrt 2``, so a level shift inside the window, one large
  step, does not count) is at least ``spread_factor`` times the same measure over the learned
  history, at least the judging scale (its floors), and wider than every such spread of the
  last ``novelty_windows`` periods. Latency that turns jittery (a flaky provider, a
  saturated pool) at an unchanged median shows no spike and no level, only this.

A would-be start at the time of day (within ``recurring_minutes``) of would-be starts on at least
``recurring_days`` earlier days of the novelty span is a routine (a nightly job, a daily batch): it
starts nothing and is learned. One ``anomaly_start`` insight (``critical`` when ``|z| >=
z_critical``, else ``warning``; the evidence names the ``statistic`` that fired). Flagged periods
(``|z| >= z_calm``) are not learned. The incident ends with one ``anomaly_end`` (``info``) after
``end_windows`` calm periods (``|z| < z_calm``; periods between ``z_calm`` and ``z_warning`` pause
the count, only a period at ``z_warning`` or beyond restarts it, so a noisy series cannot hold an
incident open forever and hide the next one), or when a level shift is confirmed:
``relearn_windows`` flagged periods and the CUSUM at ``cusum_h``. The flagged periods then become
the new baseline (re-learned).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from core.insights import AnalyzerName, Insight, Severity, WindowGroup
from core.settings import AnalyzerSettings
from core.stats import WindowStats
from operators.analyzers.anomaly_detectors import Judgement, ResidualDetectors
from operators.analyzers.base import insight_maker
from operators.analyzers.drift import DriftDetectors, DriftState
from operators.analyzers.pattern import PatternAnalyzer, PatternState, ProfileBucket

__all__ = ["METRICS", "AnomalyAnalyzer", "AnomalyState", "MetricState", "SeasonalExpectation"]

SeasonalExpectation = Callable[[str, str, str, datetime], float | None]
"""``(app, task, metric, window_start) -> expected value`` or None when unknown."""

METRICS = ("latency_ms.p95", "error_rate", "cost_usd_per_s", "calls")
_insight = insight_maker("anomaly")
_DAY_S = 86_400.0
_STARTS_KEPT = 64  # would-be starts remembered for the time-of-day recurrence
_GAPS_KEPT = 15  # gaps between measured periods whose median is a metric's cadence
_PROFILED = frozenset({"latency_ms.p95"})  # metrics with their own hour-of-day profile
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
    seasonal: bool = False  # residuals are from the pattern profile (else raw values)
    last_t: float | None = None  # epoch seconds of the last period this metric was measured in
    gaps: tuple[float, ...] = ()  # seconds between its recent measured periods (the cadence)
    profile: tuple[ProfileBucket, ...] = ()  # hour-of-day EWMA of the value (latency only)
    err_season: float = 0.0  # sum of |value - profile| while the profile knew the hour
    err_flat: float = 0.0  # sum of |value - median of the history| over the same periods
    compared: int = 0  # periods in those sums


@dataclass(frozen=True, slots=True)
class AnomalyState:
    """One app: a :class:`MetricState` per ``(task, metric)`` and the seasonality. Picklable."""

    metrics: dict[tuple[str, str], MetricState] = field(default_factory=dict)
    pattern: PatternState = field(default_factory=PatternState)
    drift: DriftState = field(default_factory=DriftState)


def _measure(windows: Sequence[WindowStats], seconds: float) -> dict[str, float]:
    count = sum(w.count for w in windows)
    return {
        "latency_ms.p95": sum(w.latency_ms.p95 * w.count for w in windows) / count,
        "error_rate": sum(w.error_count for w in windows) / count,
        "cost_usd_per_s": sum(w.cost_usd for w in windows) / seconds,
        "calls": float(count),
    }


class AnomalyAnalyzer:
    """Anomalies and level shifts on latency, error rate, cost rate and traffic.

    Insight kinds: ``anomaly_start`` (warning/critical), ``anomaly_end`` (info) and ``drift``
    (river ADWIN on quality, mean latency and error rate: :mod:`operators.analyzers.drift`).
    """

    name: AnalyzerName = "anomaly"

    def __init__(
        self,
        settings: AnalyzerSettings,
        *,
        seasonal_expectation: SeasonalExpectation | None = None,
    ) -> None:
        """Keep the thresholds (``analyzers.anomaly_*`` settings).

        Args:
            settings: ``min_samples`` (calls before the error rate is judged) and the anomaly
                thresholds ``anomaly.z_warning``, ``anomaly.z_critical``, ``anomaly.z_calm``,
                ``anomaly.cusum_k``, ``anomaly.cusum_h``, ``anomaly.cusum_clip``,
                ``anomaly.rel_floor``, ``anomaly.warmup_windows``, ``anomaly.history_windows``,
                ``anomaly.end_windows``, ``anomaly.relearn_windows``, ``anomaly.min_calls``,
                ``anomaly.score_cap``, ``anomaly.novelty_windows``, ``anomaly.level_windows``,
                ``anomaly.recurring_days``, ``anomaly.recurring_minutes``,
                ``anomaly.spread_windows``, ``anomaly.spread_factor``.
                The pattern thresholds (``profile_alpha``, ``profile_min_days``...) shape the
                seasonality of ``calls``.
            seasonal_expectation: Overrides the internal seasonality: the expected value of any
                metric at a period start (None is 0); residuals from it are judged.
        """
        self._s = settings
        self._expect = seasonal_expectation
        self._pattern = PatternAnalyzer(settings)
        self._z_warning, self._z_critical = settings.anomaly.z_warning, settings.anomaly.z_critical
        self._z_calm = settings.anomaly.z_calm
        self._cusum_h = settings.anomaly.cusum_h
        self._warmup = max(settings.anomaly.warmup_windows, 1)
        self._history = max(settings.anomaly.history_windows, self._warmup)
        self._end = max(settings.anomaly.end_windows, 1)
        self._relearn = max(settings.anomaly.relearn_windows, 1)
        self._min_calls = max(settings.anomaly.min_calls, 1)
        self._novelty_windows = max(settings.anomaly.novelty_windows, 0)
        self._level_windows = max(settings.anomaly.level_windows, 1)
        self._spread_windows = max(settings.anomaly.spread_windows, 0)
        self._recur_days = max(settings.anomaly.recurring_days, 0)
        self._season_gain = settings.anomaly.season_gain
        self._det = ResidualDetectors(settings)
        self._drift = DriftDetectors(settings)

    def initial_state(self) -> AnomalyState:
        """The state before the first period: nothing learned."""
        return AnomalyState()

    def analyze(
        self, state: AnomalyState, group: WindowGroup
    ) -> tuple[AnomalyState, list[Insight]]:
        """Judge and learn every metric of every task of one period.

        Args:
            state: The state returned for the previous period (or :meth:`initial_state`).
            group: All windows of one app for one period.

        Returns:
            The next state and the insights of this period.
        """
        metrics = dict(state.metrics)
        insights: list[Insight] = []
        seconds = max((group.window_end - group.window_start).total_seconds(), 1e-9)
        for task, windows in sorted(group.tasks().items()):
            calls = sum(w.count for w in windows)
            if calls < self._min_calls:
                continue
            for metric, value in _measure(windows, seconds).items():
                if metric == "error_rate" and calls < max(self._s.min_samples, 1):
                    continue
                key = (task, metric)
                ms = metrics.get(key, MetricState())
                expected = self._expectation(state.pattern, group, task, metric, seconds)
                if metric in _PROFILED and self._expect is None and self._season_gain > 0:
                    ms, expected = self._seasonal(ms, group, value)
                ms, insight = self._step(ms, group, task, metric, value, calls, expected)
                if metric in _PROFILED and self._expect is None and self._season_gain > 0:
                    ms = self._learn_profile(ms, group, value)
                metrics[key] = ms
                if insight is not None:
                    insights.append(insight)
        pattern = state.pattern
        if self._expect is None:  # learn the period only now: it is not its own expectation
            pattern, _ = self._pattern.analyze(pattern, group)
        drift, drifts = self._drift.step(state.drift, group)
        return AnomalyState(metrics=metrics, pattern=pattern, drift=drift), [*insights, *drifts]

    def _expectation(
        self, pattern: PatternState, group: WindowGroup, task: str, metric: str, seconds: float
    ) -> float | None:
        """The hook's value (None is 0); else the profile's calls (None: hour unknown) or 0."""
        if self._expect is not None:
            seasonal = self._expect(group.app, task, metric, group.window_start)
            return 0.0 if seasonal is None else seasonal
        if metric != "calls":
            return 0.0
        rate = self._pattern.expected_rate(pattern, group.app, task, group.window_start)
        return None if rate is None else rate * seconds

    def _cadence(self, ms: MetricState, group: WindowGroup) -> tuple[MetricState, float]:
        """Record this period's time; return the state and the share of periods measured.

        A series sampled every hour on 5-minute periods is measured in one period of 12: the
        spans counted in periods (``novelty_windows``, ``end_windows``) are then counted in its
        own measurements, scaled by this share, so they keep their length in time.
        """
        t = group.window_start.timestamp()
        period_s = max((group.window_end - group.window_start).total_seconds(), 1e-9)
        gaps = ms.gaps if ms.last_t is None else (*ms.gaps, t - ms.last_t)[-_GAPS_KEPT:]
        ms = replace(ms, last_t=t, gaps=gaps)
        if not gaps:
            return ms, 1.0
        return ms, min(1.0, period_s / max(statistics.median(gaps), period_s))

    def _seasonal(
        self, ms: MetricState, group: WindowGroup, value: float
    ) -> tuple[MetricState, float | None]:
        """The metric's expectation from its own hour-of-day profile, once it pays.

        While the residuals are raw, every period whose hour the profile knows adds
        ``|value - profile|`` and ``|value - median of the history|`` to two sums. Once they
        cover a day of the metric's own measurements and the profile's error is below
        ``season_gain`` times the flat one (and no incident is open), the metric switches to
        residuals from the profile and learns them afresh. Returns the state and the
        expectation (0 while raw; None when the profile does not know the hour).
        """
        at = group.window_start.astimezone(UTC)
        bucket = ms.profile[at.hour] if ms.profile else None
        known = bucket is not None and bucket.days >= max(self._s.profile_min_days, 1)
        expected = bucket.value if known and bucket is not None else None
        if ms.seasonal:
            return ms, expected
        if expected is None or len(ms.history) < self._warmup:
            return ms, 0.0
        flat = abs(value - statistics.median(ms.history))
        ms = replace(
            ms,
            err_season=ms.err_season + abs(value - expected),
            err_flat=ms.err_flat + flat,
            compared=ms.compared + 1,
        )
        period_s = max((group.window_end - group.window_start).total_seconds(), 1e-9)
        cadence = statistics.median(ms.gaps) if ms.gaps else period_s
        day = max(1, round(_DAY_S / max(cadence, period_s)))
        if (
            ms.started is None
            and ms.compared >= day
            and ms.err_season < self._season_gain * ms.err_flat
        ):
            fresh = MetricState(seasonal=True, profile=ms.profile, last_t=ms.last_t, gaps=ms.gaps)
            return fresh, expected
        return ms, 0.0

    def _learn_profile(self, ms: MetricState, group: WindowGroup, value: float) -> MetricState:
        at = group.window_start.astimezone(UTC)
        hours = list(ms.profile or _HOURS)
        hours[at.hour] = hours[at.hour].add(at.toordinal(), value, self._s.profile_alpha)
        return replace(ms, profile=tuple(hours))

    @staticmethod
    def _scaled(windows: int, share: float) -> int:
        return windows if windows == 0 else max(1, round(windows * share))

    def _learn(self, history: tuple[float, ...], resid: float) -> tuple[float, ...]:
        return (*history, resid)[-self._history :]

    def _step(
        self,
        ms: MetricState,
        group: WindowGroup,
        task: str,
        metric: str,
        value: float,
        calls: int,
        expected: float | None,
    ) -> tuple[MetricState, Insight | None]:
        if expected is None:  # the profile does not know this hour yet
            if ms.seasonal:
                return ms, None  # residual history cannot judge a raw value
            expected = 0.0
        elif self._expect is None and metric == "calls" and not ms.seasonal:
            if ms.started is None:  # switch to seasonal residuals: learn them afresh
                ms = MetricState(seasonal=True)
            else:
                expected = 0.0  # finish the raw incident first
        resid = value - expected
        ms, share = self._cadence(ms, group)
        novelty = self._novelty_windows
        end = self._scaled(self._end, share)
        if len(ms.history) < self._warmup:
            return replace(ms, history=self._learn(ms.history, resid)), None
        j = self._det.judge(
            ms.history, (ms.cusum_up, ms.cusum_down), metric, resid, expected, calls
        )
        score = abs(j.z)
        seen = ms.seen or ms.history
        novel = resid > max(seen) if j.z > 0 else resid < min(seen)
        recent = (*seen, resid)[-self._level_windows :]
        level = statistics.median(recent)
        levels = ms.levels or (level,)
        # A shift's level must be new against the levels before its CUSUM excursion began (not
        # its own: a moderate shift's median has settled by the time the CUSUM reaches h).
        before_up = levels[: max(len(levels) - ms.run_up, 1)]
        before_down = levels[: max(len(levels) - ms.run_down, 1)]
        shift_up = j.up >= self._cusum_h and level > max(before_up)
        shift_down = j.down >= self._cusum_h and level < min(before_down)
        run_up = ms.run_up + 1 if j.up > 0 else 0
        run_down = ms.run_down + 1 if j.down > 0 else 0
        keep = max(novelty, self._level_windows, self._spread_windows)
        spread, spreads = self._det.recent_spread(ms.spreads, seen, resid, novelty)
        wider = spread is not None and self._det.is_wider(spread, ms.spreads, j, novelty)
        ms = replace(
            ms,
            seen=(*seen, resid)[-keep:],
            levels=(*levels, level)[-keep:],
            spreads=spreads,
            run_up=run_up,
            run_down=run_down,
        )
        if ms.started is None:
            spike = score >= self._z_warning and (novel or novelty == 0)
            sustained = j.cusum >= self._cusum_h
            shift = (shift_up or shift_down) if novelty else sustained
            if spike or shift or wider:
                t = group.window_start.timestamp()
                period_s = (group.window_end - group.window_start).total_seconds()
                days = self._det.recurring_days(ms.starts, t, period_s)
                ms = replace(ms, starts=(*ms.starts, t)[-_STARTS_KEPT:])
                if self._recur_days > 0 and days >= self._recur_days:
                    spike = shift = wider = False  # the time of day of earlier days: a routine
            if not (spike or shift or wider):
                learned = self._learn(ms.history, resid)
                return replace(ms, history=learned, cusum_up=j.up, cusum_down=j.down), None
            severity: Severity = "critical" if score >= self._z_critical else "warning"
            started = replace(
                ms,
                flagged=(resid,),
                cusum_up=0.0,
                cusum_down=0.0,
                run_up=0,
                run_down=0,
                started=group.window_start,
            )
            statistic = "robust_z" if spike else "cusum" if shift else "spread"
            extra: dict[str, float | str] = {"statistic": statistic, "level": level + expected}
            if statistic == "spread" and spread is not None:
                extra |= {"spread": spread, "baseline_spread": j.step_spread, "direction": "wider"}
            insight = self._insight(
                group, task, metric, "anomaly_start", severity, value, j, "", extra
            )
            return replace(started, calm=0), insight
        ms = replace(ms, cusum_up=j.up, cusum_down=j.down)
        if score >= self._z_calm:
            flagged = (*ms.flagged, resid)[-self._relearn :]
            if len(flagged) < self._relearn or j.cusum < self._cusum_h:
                calm = 0 if score >= self._z_warning else ms.calm
                return replace(ms, flagged=flagged, calm=calm), None
            relearned = replace(
                ms,
                history=flagged,
                flagged=(),
                started=None,
                calm=0,
                cusum_up=0.0,
                cusum_down=0.0,
                run_up=0,
                run_down=0,
            )
            return relearned, self._insight(
                group, task, metric, "anomaly_end", "info", value, j, "relearned"
            )
        calm = ms.calm + 1
        learned = self._learn(ms.history, resid)
        if calm < end:
            return replace(ms, history=learned, calm=calm), None
        ended = replace(ms, history=learned, flagged=(), started=None, calm=0)
        return ended, self._insight(group, task, metric, "anomaly_end", "info", value, j, "calm")

    def _insight(
        self,
        group: WindowGroup,
        task: str,
        metric: str,
        kind: str,
        severity: Severity,
        value: float,
        j: Judgement,
        reason: str,
        extra: dict[str, float | str] | None = None,
    ) -> Insight:
        direction = "above" if j.z >= 0 else "below"
        spread = (extra or {}).get("spread")
        if kind == "anomaly_start" and isinstance(spread, float):
            message = (
                f"{metric} of {task} spreads {spread:.6g} over the last {self._spread_windows} "
                f"periods, {spread / max(j.step_spread, 1e-300):.1f} times its baseline's "
                f"{j.step_spread:.6g} (now {value:.6g}, baseline {j.baseline:.6g}): anomaly "
                "started."
            )
        elif kind == "anomaly_start":
            message = (
                f"{metric} of {task} is {value:.6g}, {direction} its baseline of "
                f"{j.baseline:.6g} (robust z {j.z:+.1f}, CUSUM {j.cusum:.1f}): anomaly started."
            )
        elif reason == "relearned":
            message = (
                f"{metric} of {task} stayed at the new level ({value:.6g}) for "
                f"{self._relearn} periods: re-learned as its baseline, anomaly ended."
            )
        else:
            message = (
                f"{metric} of {task} is back to {value:.6g} (baseline {j.baseline:.6g}) for "
                f"{self._end} periods: anomaly ended."
            )
        evidence: dict[str, float | str] = {
            "value": value,
            "baseline": j.baseline,
            "scale": j.scale,
            "z": j.z,
            "cusum": j.cusum,
            "z_warning": self._z_warning,
            "z_critical": self._z_critical,
            "cusum_h": self._cusum_h,
            "direction": direction,
        }
        if reason:
            evidence["reason"] = reason
        evidence.update(extra or {})
        return _insight(
            group,
            task,
            kind,
            severity,
            metric,
            value,
            j.baseline,
            abs(j.z),
            message,
            evidence,
        )
