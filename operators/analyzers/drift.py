"""Online drift detection (river's ADWIN) on each task's quality, latency and error streams.

Each period gives one value per stream and task: the count-weighted mean quality score (periods
with at least ``min_samples`` scored calls), the count-weighted median (p50) latency, and the
error rate (periods with at least ``min_samples`` calls). Each stream feeds its own
:class:`river.drift.ADWIN` (``drift.delta`` is its confidence; ``drift.grace_windows`` values
before it may report). When ADWIN cuts its window, the mean of the values it kept (the recent
regime) differs from the mean of the older values it dropped with confidence ``1 - delta``: a
``drift`` insight (``warning``; ``info`` when the move is less than ``drift.min_change`` of the
larger mean, which is also its score) carries both means, how many periods each covers, the
detector and its delta. The anomaly analyzer runs these detectors beside its own and emits
their insights.

The detectors are mutable river objects; every step works on a deep copy, so a state returned
once is never changed afterwards (snapshots stay valid) and pickles with the rest.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

from river.drift import ADWIN

from core.insights import Insight, Severity, WindowGroup
from core.settings import AnalyzerSettings
from core.stats import WindowStats
from operators.analyzers.base import insight_maker

__all__ = ["STREAMS", "DriftDetectors", "DriftState"]

STREAMS = ("quality", "latency_ms.p50", "error_rate")
_insight = insight_maker("anomaly", {})  # drift insights name their statistic (ADWIN)


@dataclass(frozen=True, slots=True)
class DriftState:
    """One ADWIN per (task, stream). Never mutated: a step copies what it updates."""

    detectors: dict[tuple[str, str], ADWIN] = field(default_factory=dict)


def stream_values(windows: Sequence[WindowStats], min_samples: int) -> dict[str, float]:
    """The period's value of each stream for one task (streams without enough data left out)."""
    calls = sum(w.count for w in windows)
    out: dict[str, float] = {}
    if calls <= 0:
        return out
    out["latency_ms.p50"] = sum(w.latency_ms.p50 * w.count for w in windows) / calls
    if calls >= min_samples:
        out["error_rate"] = sum(w.error_count for w in windows) / calls
    scored = [(w.quality.mean, w.quality.count) for w in windows if w.quality.mean is not None]
    n = sum(c for _, c in scored)
    if n >= min_samples and n > 0:
        out["quality"] = sum(m * c for m, c in scored if m is not None) / n
    return out


class DriftDetectors:
    """ADWIN per task and stream; pure in the sense of the analyzers (state in, state out)."""

    def __init__(self, settings: AnalyzerSettings) -> None:
        """Keep ``drift.delta``, ``drift.grace_windows``, ``drift.min_change``, ``min_samples``."""
        self._delta = settings.drift.delta
        self._grace = max(settings.drift.grace_windows, 1)
        self._min_change = settings.drift.min_change
        self._min_samples = max(settings.min_samples, 1)

    def _new(self) -> ADWIN:
        return ADWIN(  # type: ignore[no-untyped-call]
            delta=self._delta, clock=1, grace_period=self._grace
        )

    def step(self, state: DriftState, group: WindowGroup) -> tuple[DriftState, list[Insight]]:
        """Feed one period to every stream's detector; the drift insights it raised."""
        if self._delta <= 0:
            return state, []
        detectors = dict(state.detectors)
        insights: list[Insight] = []
        for task, windows in sorted(group.tasks().items()):
            for stream, value in stream_values(windows, self._min_samples).items():
                key = (task, stream)
                prev = detectors.get(key)
                det = self._new() if prev is None else copy.deepcopy(prev)
                before_mean, before_width = float(det.estimation), int(det.width)
                det.update(value)  # type: ignore[no-untyped-call]
                detectors[key] = det
                if det.drift_detected:
                    insights.append(
                        self._insight(group, task, stream, value, before_mean, before_width, det)
                    )
        return DriftState(detectors=detectors), insights

    def _insight(
        self,
        group: WindowGroup,
        task: str,
        stream: str,
        value: float,
        before: float,
        before_width: int,
        det: ADWIN,
    ) -> Insight:
        after, kept = float(det.estimation), int(det.width)
        dropped = before_width + 1 - kept  # the older values ADWIN cut off
        if dropped > 0:
            before = (before * before_width + value - after * kept) / dropped
        change = after - before
        # Relative to the larger mean, so a stream that was 0 (no errors) scores a finite 1.
        scale = max(abs(before), abs(after))
        relative = abs(change) / scale if scale > 0 else 0.0
        severity: Severity = "warning" if relative >= self._min_change else "info"
        direction = "up" if change > 0 else "down"
        message = (
            f"{stream} of {task} drifted {direction}: the mean of its last {kept} periods is "
            f"{after:.6g} against {before:.6g} over the {max(dropped, 0)} before them, which "
            f"it dropped (ADWIN, delta {self._delta:g})."
        )
        evidence: dict[str, float | str] = {
            "detector": "ADWIN",
            "delta": self._delta,
            "value": value,
            "mean_before": before,
            "mean_after": after,
            "periods_before": float(max(dropped, 0)),
            "periods_after": float(kept),
            "change": change,
            "direction": direction,
            "min_change": self._min_change,
        }
        return _insight(
            group, task, "drift", severity, stream, value, before, relative, message, evidence
        )
