"""Anomaly analyzer: robust residual detection plus CUSUM change detection, per (app, task).

This module is the wiring: what each metric's expected value is, per period. The rest lives
beside it: the detectors (:mod:`operators.analyzers.anomaly_detectors`), the incident state
machine that decides what they mean (:mod:`operators.analyzers.anomaly_incident`), what a metric
learns of itself, its cadence and daily profile (:mod:`operators.analyzers.metric_state`), and
the drift detectors (:mod:`operators.analyzers.drift`).

Four metrics are followed per task, each as one number per period:

* ``latency_ms.p95``: the count-weighted mean of the segments' p95 (as the performance analyzer;
  p95 is where incidents show first, and the MAD scale absorbs its extra noise);
* ``error_rate``: errors / calls, judged only with at least ``settings.min_samples`` calls;
* ``cost_usd_per_s``: spend of the period divided by its length;
* ``calls``: calls in the period (traffic).

**Seasonality.** ``calls`` is judged against ``expected_rate * period length`` of the pattern
analyzer's hour-of-day and weekday profiles once they know the hour (``profile_min_days``): the
metric then starts learning residuals afresh (after any open incident ends), and skips periods
whose hour the profile does not know yet. The profiles are the pattern analyzer's own state as
it was before the period, when it runs in the same
:class:`~operators.analyzers.runner.AnalysisRunner` (which hands it over); otherwise this analyzer
learns its own copy, each period after it is judged. Latency follows
its own daily profile once that predicts better
(:class:`~operators.analyzers.metric_state.DailyProfile`). Before that, and for the other
metrics, the expectation is 0 (raw values). A ``seasonal_expectation`` hook, when given,
replaces all of this.

**Detector.** The residual ``r = value - expected`` is compared with the median of the last
``history_windows`` learned residuals, scaled by ``1.4826 * MAD`` with floors (``rel_floor`` of
the baseline level; the binomial standard error for the error rate; the Poisson one for calls).
When over half the history equals its median (MAD 0: a mostly idle series), the spread is
``1.2533 *`` the mean absolute deviation instead. ``|z|`` is the score. Periods with fewer than
``min_calls`` calls are not judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.insights import AnalyzerName, Insight, WindowGroup
from core.settings import AnalyzerSettings
from core.stats import WindowStats
from operators.analyzers.anomaly_incident import IncidentMachine, Reading
from operators.analyzers.drift import DriftDetectors, DriftState
from operators.analyzers.metric_state import DailyProfile, MetricState, period_seconds
from operators.analyzers.pattern import PatternAnalyzer, PatternState

__all__ = ["METRICS", "AnomalyAnalyzer", "AnomalyState", "MetricState", "SeasonalExpectation"]

SeasonalExpectation = Callable[[str, str, str, datetime], float | None]
"""``(app, task, metric, window_start) -> expected value`` or None when unknown."""

METRICS = ("latency_ms.p95", "error_rate", "cost_usd_per_s", "calls")
_PROFILED = frozenset({"latency_ms.p95"})  # metrics with their own hour-of-day profile


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
    reads: AnalyzerName = "pattern"  # the pattern analyzer's profiles, when it runs beside

    def __init__(
        self,
        settings: AnalyzerSettings,
        *,
        seasonal_expectation: SeasonalExpectation | None = None,
    ) -> None:
        """Keep the thresholds (``analyzers.anomaly.*`` settings).

        Args:
            settings: ``min_samples`` (calls before the error rate is judged), the
                ``anomaly.*`` thresholds of the incident machine and its detectors
                (:class:`~operators.analyzers.anomaly_incident.IncidentMachine`),
                ``anomaly.season_gain`` and the pattern thresholds (``profile_alpha``,
                ``profile_min_days``...) that shape the seasonality.
            seasonal_expectation: Overrides the internal seasonality: the expected value of any
                metric at a period start (None is 0); residuals from it are judged.
        """
        self._s = settings
        self._expect = seasonal_expectation
        self._pattern = PatternAnalyzer(settings)
        self._min_calls = max(settings.anomaly.min_calls, 1)
        self._profile = DailyProfile(
            alpha=settings.profile_alpha,
            min_days=settings.profile_min_days,
            gain=settings.anomaly.season_gain,
            warmup=max(settings.anomaly.warmup_windows, 1),
        )
        self._incidents = IncidentMachine(settings)
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
        return self._analyze(state, group, None)

    def analyze_with(
        self, state: AnomalyState, group: WindowGroup, peer_state: Any
    ) -> tuple[AnomalyState, list[Insight]]:
        """:meth:`analyze` with the pattern analyzer's profiles instead of a copy of its own.

        Args:
            state: The state returned for the previous period (or :meth:`initial_state`).
            group: All windows of one app for one period.
            peer_state: The pattern analyzer's :class:`PatternState` before this period.

        Returns:
            The next state (without a pattern copy) and the insights of this period.
        """
        if not isinstance(peer_state, PatternState):
            raise TypeError(f"the anomaly analyzer reads a PatternState, got {type(peer_state)}")
        return self._analyze(state, group, peer_state)

    def _analyze(
        self, state: AnomalyState, group: WindowGroup, shared: PatternState | None
    ) -> tuple[AnomalyState, list[Insight]]:
        pattern = state.pattern if shared is None else shared
        metrics = dict(state.metrics)
        insights: list[Insight] = []
        seconds = period_seconds(group)
        profiled = self._expect is None and self._profile.enabled
        for task, windows in sorted(group.tasks().items()):
            calls = sum(w.count for w in windows)
            if calls < self._min_calls:
                continue
            for metric, value in _measure(windows, seconds).items():
                if metric == "error_rate" and calls < max(self._s.min_samples, 1):
                    continue
                ms = metrics.get((task, metric), MetricState())
                expected = self._expectation(pattern, group, task, metric, seconds)
                if metric in _PROFILED and profiled:
                    ms, expected = self._profile.expectation(ms, group, value)
                ms, insight = self._judge(ms, Reading(group, task, metric, value, calls), expected)
                if metric in _PROFILED and profiled:
                    ms = self._profile.learn(ms, group, value)
                metrics[(task, metric)] = ms
                if insight is not None:
                    insights.append(insight)
        if shared is not None:
            pattern = PatternState()  # the pattern analyzer keeps it: no copy here
        elif self._expect is None:  # learn the period only now: it is not its own expectation
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

    def _judge(
        self,
        ms: MetricState,
        r: Reading,
        expected: float | None,
    ) -> tuple[MetricState, Insight | None]:
        """Settle raw or seasonal residuals, then hand the period to the incident machine."""
        if expected is None:  # the profile does not know this hour yet
            if ms.seasonal:
                return ms, None  # residual history cannot judge a raw value
            expected = 0.0
        elif self._expect is None and r.metric == "calls" and not ms.seasonal:
            if ms.started is None:  # switch to seasonal residuals: learn them afresh
                ms = ms.relearning()
            else:
                expected = 0.0  # finish the raw incident first
        return self._incidents.step(ms, r, expected)
