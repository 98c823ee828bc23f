"""The anomaly analyzer's pure detectors: robust z with CUSUM, step spread, time-of-day recurrence.

No state of their own: each call takes what a metric has learned (its residual history, CUSUM
pair, remembered spreads, would-be starts) and returns numbers; the incident lifecycle that
decides what they mean lives in :mod:`operators.analyzers.anomaly`.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from core.settings import AnalyzerSettings

__all__ = ["Judgement", "ResidualDetectors", "robust_spread", "step_spread"]

_MAD_TO_SIGMA = 1.4826  # 1.4826 * MAD estimates sigma for normal data
_MEANAD_TO_SIGMA = 1.2533  # sqrt(pi / 2) * mean absolute deviation does too
_DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Judgement:
    """One residual judged: robust z, the CUSUM pair after it, the baseline and its scale."""

    z: float
    up: float
    down: float
    baseline: float
    scale: float
    step_spread: float = 0.0  # the history's spread from its steps (0 when not measured)

    @property
    def cusum(self) -> float:
        """The larger side of the two-sided CUSUM."""
        return max(self.up, self.down)


def robust_spread(deviations: Sequence[float], mad: float | None = None) -> float:
    """``1.4826 * MAD``, or ``1.2533 *`` the mean absolute deviation when the MAD is 0."""
    mad = statistics.median(deviations) if mad is None else mad
    return _MAD_TO_SIGMA * mad if mad > 0 else _MEANAD_TO_SIGMA * statistics.fmean(deviations)


def step_spread(values: Sequence[float]) -> float:
    """The robust spread of the steps between consecutive values, over ``sqrt 2``.

    For independent noise that is the spread of one value; a level shift is a single step, so
    it barely moves this (the spread around a window's median would double across a shift).
    """
    steps = [abs(b - a) for a, b in itertools.pairwise(values)]
    return robust_spread(steps) / math.sqrt(2.0) if steps else 0.0


class ResidualDetectors:
    """The detectors' thresholds (``analyzers.anomaly.*``) and the detectors themselves."""

    def __init__(self, settings: AnalyzerSettings) -> None:
        """Keep the thresholds the detectors compare against."""
        self._cusum_k, self._cusum_h = settings.anomaly.cusum_k, settings.anomaly.cusum_h
        self._cusum_clip = settings.anomaly.cusum_clip
        self._rel_floor, self._score_cap = settings.anomaly.rel_floor, settings.anomaly.score_cap
        self._novelty = max(settings.anomaly.novelty_windows, 0)
        self._spread_windows = max(settings.anomaly.spread_windows, 0)
        self._spread_factor = settings.anomaly.spread_factor
        self._recur_s = settings.anomaly.recurring_minutes * 60.0

    def judge(
        self,
        history: Sequence[float],
        cusum: tuple[float, float],
        metric: str,
        resid: float,
        expected: float,
        calls: int,
    ) -> Judgement:
        """Robust z of ``resid`` against ``history`` (floored scale) and the next CUSUM pair."""
        med = statistics.median(history)
        deviations = [abs(h - med) for h in history]
        mad = statistics.median(deviations)
        # Iglewicz & Hoaglin: when over half the history sits on the median (MAD 0, e.g. a
        # mostly idle series), the mean absolute deviation still measures its spread.
        spread = robust_spread(deviations, mad)
        baseline = expected + med
        scale = max(spread, self._rel_floor * abs(baseline))
        if metric == "error_rate":
            p = min(max(baseline, 1.0 / calls), 0.5)
            scale = max(scale, math.sqrt(p * (1 - p) / calls))
        elif metric == "calls":
            scale = max(scale, math.sqrt(max(baseline, 1.0)))
        dev = resid - med
        if scale > 0:
            z = max(-self._score_cap, min(self._score_cap, dev / scale))
        else:
            z = 0.0 if dev == 0 else math.copysign(self._score_cap, dev)
        zc = max(-self._cusum_clip, min(self._cusum_clip, z))
        up = max(0.0, cusum[0] + zc - self._cusum_k)
        down = max(0.0, cusum[1] - zc - self._cusum_k)
        steps = step_spread(history) if self._spread_windows > 1 else 0.0
        return Judgement(
            z=z,
            up=up,
            down=down,
            baseline=baseline,
            scale=scale,
            step_spread=steps,
        )

    def recurring_days(self, starts: tuple[float, ...], t: float, period_s: float) -> int:
        """Earlier days (within the novelty span) with a start at this time of day."""
        span_days = max(1, math.ceil(self._novelty * period_s / _DAY_S))
        days: set[int] = set()
        for s in starts:
            d = round((t - s) / _DAY_S)
            if 1 <= d <= span_days and abs(t - s - d * _DAY_S) <= self._recur_s:
                days.add(d)
        return len(days)

    def recent_spread(
        self, spreads: tuple[float, ...], seen: tuple[float, ...], resid: float, novelty: int
    ) -> tuple[float | None, tuple[float, ...]]:
        """The step spread of the last ``spread_windows`` residuals, and the remembered spreads.

        None (and the spreads unchanged) while fewer were seen, or when it is off.
        """
        if self._spread_windows < 2 or len(seen) + 1 < self._spread_windows:
            return None, spreads
        window = (*seen, resid)[-self._spread_windows :]
        spread = step_spread(window)
        return spread, (*spreads, spread)[-max(novelty, 1) :]

    def is_wider(
        self, spread: float, spreads: tuple[float, ...], j: Judgement, novelty: int
    ) -> bool:
        """Whether ``spread`` is a spread change.

        It must be ``spread_factor`` times the history's step spread, at least the judging scale
        (with its floors: ``rel_floor`` of the level, the binomial or Poisson error), and wider
        than every spread of the novelty span (a series often this wide is not new).
        """
        return (
            spread > 0
            and spread >= self._spread_factor * j.step_spread
            and spread >= j.scale
            and (not spreads or spread > max(spreads) or novelty == 0)
        )
