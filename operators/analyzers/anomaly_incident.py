"""The anomaly analyzer's incident state machine: when a judged period starts, holds or ends one.

One call per measured period of one metric (:meth:`IncidentMachine.step`), with the residual
``value - expected``; the detectors it asks are :mod:`operators.analyzers.anomaly_detectors`, the
state it keeps is :class:`operators.analyzers.metric_state.MetricState`.

Nothing is judged before ``warmup_windows`` learned residuals. A period starts an incident in
three ways, whichever comes first:

* a spike: ``|z| >= z_warning`` and the residual is a new extreme (beyond every residual of the
  last ``novelty_windows`` periods, flagged ones included, so a recurring spike of a known height
  is not reported again);
* a level shift: a two-sided CUSUM of the clipped z (allowance ``cusum_k``, running in calm
  periods too) reaches ``cusum_h`` in one direction, and the level (median of the last
  ``level_windows`` residuals) is beyond, in that direction, every level of the last
  ``novelty_windows`` periods before that CUSUM's excursion began (its own levels do not count:
  a moderate shift's median settles before its CUSUM reaches ``cusum_h``);
* a spread change: the step spread of the last ``spread_windows`` residuals is at least
  ``spread_factor`` times the history's, at least the judging scale, and wider than every such
  spread of the last ``novelty_windows`` periods (latency turning jittery at an unchanged median).

A would-be start at the time of day (within ``recurring_minutes``) of would-be starts on at least
``recurring_days`` earlier days of the novelty span is a routine: it starts nothing and is learned.
A start is one ``anomaly_start`` insight (``critical`` when ``|z| >= z_critical``, else
``warning``; the evidence names the ``statistic`` that fired). Flagged periods (``|z| >= z_calm``)
are not learned. The incident ends with one ``anomaly_end`` (``info``) after ``end_windows`` calm
periods (``|z| < z_calm``; periods between ``z_calm`` and ``z_warning`` pause the count, only a
period at ``z_warning`` or beyond restarts it), or when a level shift is confirmed:
``relearn_windows`` flagged periods and the CUSUM at ``cusum_h``; the flagged periods then become
the new baseline.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from core.insights import Insight, Severity, WindowGroup
from core.settings import AnalyzerSettings
from operators.analyzers.anomaly_detectors import Judgement, ResidualDetectors
from operators.analyzers.base import insight_maker
from operators.analyzers.metric_state import MetricState, period_seconds, record_cadence

__all__ = ["IncidentMachine", "Reading"]

#: The statistic behind each insight kind this analyzer emits (``evidence["statistic"]``).
STATISTICS: dict[str, str] = {
    "anomaly_start": "robust_z",
    "anomaly_end": "robust_z",
}
_insight = insight_maker("anomaly", STATISTICS)
_STARTS_KEPT = 64  # would-be starts remembered for the time-of-day recurrence


@dataclass(frozen=True, slots=True)
class Reading:
    """One metric of one task in one period: what is judged."""

    group: WindowGroup
    task: str
    metric: str
    value: float
    calls: int


@dataclass(frozen=True, slots=True)
class _Seen:
    """What one period shows beside its z: a new extreme, its level, a new shift or spread."""

    novel: bool  # beyond every residual of the novelty span, in the z's direction
    level: float  # median of the last level_windows residuals
    shift: bool  # the CUSUM at h with a level beyond every level before its excursion
    spread: float | None  # step spread of the last spread_windows residuals (None: too few)
    wider: bool  # a spread change


def _scaled(windows: int, share: float) -> int:
    return windows if windows == 0 else max(1, round(windows * share))


class IncidentMachine:
    """Judges one metric's residual per period and opens, holds and ends its incidents."""

    def __init__(self, settings: AnalyzerSettings) -> None:
        """Keep the ``analyzers.anomaly.*`` thresholds of the lifecycle and its detectors."""
        self._z_warning, self._z_critical = settings.anomaly.z_warning, settings.anomaly.z_critical
        self._z_calm = settings.anomaly.z_calm
        self._cusum_h = settings.anomaly.cusum_h
        self._warmup = max(settings.anomaly.warmup_windows, 1)
        self._history = max(settings.anomaly.history_windows, self._warmup)
        self._end = max(settings.anomaly.end_windows, 1)
        self._relearn = max(settings.anomaly.relearn_windows, 1)
        self._novelty = max(settings.anomaly.novelty_windows, 0)
        self._level_windows = max(settings.anomaly.level_windows, 1)
        self._spread_windows = max(settings.anomaly.spread_windows, 0)
        self._recur_days = max(settings.anomaly.recurring_days, 0)
        self._det = ResidualDetectors(settings)

    def _learn(self, history: tuple[float, ...], resid: float) -> tuple[float, ...]:
        return (*history, resid)[-self._history :]

    def step(
        self,
        ms: MetricState,
        r: Reading,
        expected: float,
    ) -> tuple[MetricState, Insight | None]:
        """Judge ``value - expected`` of one period; the next state and any insight."""
        resid = r.value - expected
        ms, share = record_cadence(ms, r.group)
        if len(ms.history) < self._warmup:
            return replace(ms, history=self._learn(ms.history, resid)), None
        j = self._det.judge(
            ms.history, (ms.cusum_up, ms.cusum_down), r.metric, resid, expected, r.calls
        )
        ms, seen = self._observe(ms, resid, j)
        if ms.started is None:
            return self._calm_period(ms, r, resid, expected, j, seen)
        return self._incident_period(ms, r, resid, j, share)

    def _observe(self, ms: MetricState, resid: float, j: Judgement) -> tuple[MetricState, _Seen]:
        """Remember the period's residual, level and spread (in incidents too)."""
        novelty = self._novelty
        seen = ms.seen or ms.history
        novel = resid > max(seen) if j.z > 0 else resid < min(seen)
        level = statistics.median((*seen, resid)[-self._level_windows :])
        levels = ms.levels or (level,)
        # A shift's level must be new against the levels before its CUSUM excursion began (not
        # its own: a moderate shift's median has settled by the time the CUSUM reaches h).
        before_up = levels[: max(len(levels) - ms.run_up, 1)]
        before_down = levels[: max(len(levels) - ms.run_down, 1)]
        shift_up = j.up >= self._cusum_h and level > max(before_up)
        shift_down = j.down >= self._cusum_h and level < min(before_down)
        keep = max(novelty, self._level_windows, self._spread_windows)
        spread, spreads = self._det.recent_spread(ms.spreads, seen, resid, novelty)
        wider = spread is not None and self._det.is_wider(spread, ms.spreads, j, novelty)
        ms = replace(
            ms,
            seen=(*seen, resid)[-keep:],
            levels=(*levels, level)[-keep:],
            spreads=spreads,
            run_up=ms.run_up + 1 if j.up > 0 else 0,
            run_down=ms.run_down + 1 if j.down > 0 else 0,
        )
        return ms, _Seen(novel, level, shift_up or shift_down, spread, wider)

    def _calm_period(
        self,
        ms: MetricState,
        r: Reading,
        resid: float,
        expected: float,
        j: Judgement,
        seen: _Seen,
    ) -> tuple[MetricState, Insight | None]:
        novelty = self._novelty
        score = abs(j.z)
        level, spread, wider = seen.level, seen.spread, seen.wider
        spike = score >= self._z_warning and (seen.novel or novelty == 0)
        shift = seen.shift if novelty else j.cusum >= self._cusum_h
        if spike or shift or wider:
            t = r.group.window_start.timestamp()
            days = self._det.recurring_days(ms.starts, t, period_seconds(r.group))
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
            started=r.group.window_start,
            calm=0,
        )
        statistic = "robust_z" if spike else "cusum" if shift else "spread"
        extra: dict[str, float | str] = {"statistic": statistic, "level": level + expected}
        if statistic == "spread" and spread is not None:
            extra |= {"spread": spread, "baseline_spread": j.step_spread, "direction": "wider"}
        insight = self._insight(r, "anomaly_start", severity, j, "", extra)
        return started, insight

    def _incident_period(
        self,
        ms: MetricState,
        r: Reading,
        resid: float,
        j: Judgement,
        share: float,
    ) -> tuple[MetricState, Insight | None]:
        ms = replace(ms, cusum_up=j.up, cusum_down=j.down)
        if abs(j.z) >= self._z_calm:
            flagged = (*ms.flagged, resid)[-self._relearn :]
            if len(flagged) < self._relearn or j.cusum < self._cusum_h:
                calm = 0 if abs(j.z) >= self._z_warning else ms.calm
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
            return relearned, self._insight(r, "anomaly_end", "info", j, "relearned")
        calm = ms.calm + 1
        learned = self._learn(ms.history, resid)
        if calm < _scaled(self._end, share):
            return replace(ms, history=learned, calm=calm), None
        ended = replace(ms, history=learned, flagged=(), started=None, calm=0)
        return ended, self._insight(r, "anomaly_end", "info", j, "calm")

    def _insight(
        self,
        r: Reading,
        kind: str,
        severity: Severity,
        j: Judgement,
        reason: str,
        extra: dict[str, float | str] | None = None,
    ) -> Insight:
        metric, task, value = r.metric, r.task, r.value
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
            r.group, task, kind, severity, metric, value, j.baseline, abs(j.z), message, evidence
        )
