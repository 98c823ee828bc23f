"""Batching: micro-batches when many small calls arrive well within the latency budget.

Driven by the pattern analyzer's ``batching_potential`` insight of the task (peak rate, mean
output tokens, p95 and its headroom under the SLO ``analyzers.latency_p95_warning_ms``). A batch
may wait ``max_wait_ms = min(analyzers.batching_max_wait_ms, headroom ·
decisions.batching_headroom_share)`` and holds what arrives meanwhile at the peak rate:
``max_batch_size = min(decisions.batching_max_size, ⌊peak · max_wait⌋)``; fewer than two calls
per batch proposes nothing. The p95 is expected to grow by at most the wait; the request count
falls by ``1 - 1/max_batch_size`` at peak (evidence).
"""

from __future__ import annotations

import math
from dataclasses import replace

from core.decisions import Decision, ExpectedImpact
from core.settings import AnalyzerSettings, DecisionSettings
from operators.strategies.base import StrategyInput, StrategyName
from operators.strategies.period import (
    Memory,
    baseline,
    due,
    evidence_confidence,
    find_insight,
    make_decision,
    remember,
    rollback_plan,
    totals,
)

__all__ = ["Batching"]

_KEY = "batching"
_MS = 1000.0


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


class Batching:
    """Micro-batching sized from arrival rate and p95 SLO headroom (see the module doc)."""

    name: StrategyName = "batching"

    def __init__(self, decisions: DecisionSettings, analyzers: AnalyzerSettings) -> None:
        """Keep the SLO, the batching wait and the size bounds."""
        self._s = decisions
        self._a = analyzers

    def initial_state(self) -> Memory:
        """Nothing proposed yet."""
        return Memory()

    def propose(self, state: Memory, period: StrategyInput) -> tuple[Memory, Decision | None]:
        """Propose micro-batching when the pattern analyzer saw batching potential."""
        s, a, at = self._s, self._a, period.window_end
        found = find_insight(period.insights, period.task, ("batching_potential",))
        if found is None or not due(state.proposed, _KEY, at, s.repropose_after):
            return state, None
        if period.config is not None and period.config.batching is not None:
            return state, None
        t = totals(baseline(period.windows))
        ev = found.evidence
        peak, p95 = _number(ev.get("peak_rate_per_s")), _number(ev.get("latency_p95_ms"))
        samples = _number(ev.get("samples"))
        if peak is None or p95 is None or samples is None or samples < s.min_samples:
            return state, None
        headroom = a.latency_p95_warning_ms - p95
        wait = round(min(a.batching_max_wait_ms, headroom * s.batching_headroom_share), 1)
        size = min(s.batching_max_size, math.floor(peak * wait / _MS)) if wait > 0 else 0
        if size < 2:
            return state, None
        decision = make_decision(
            period,
            self.name,
            action={"batching": {"max_batch_size": size, "max_wait_ms": wait}},
            action_key=f"{size}/{wait:g}",
            rationale=(
                f"Batch {period.task} up to {size} calls waiting at most {wait:g} ms: it peaks "
                f"at {peak:.3g} calls/s and its p95 of {p95:.0f} ms leaves {headroom:.0f} ms "
                f"under the {a.latency_p95_warning_ms:.0f} ms SLO."
            ),
            evidence={
                "insight_id": found.id,
                "peak_rate_per_s": peak,
                "latency_p95_ms": p95,
                "latency_slo_ms": a.latency_p95_warning_ms,
                "headroom_ms": headroom,
                "headroom_share": s.batching_headroom_share,
                "analyzer_max_wait_ms": a.batching_max_wait_ms,
                "max_wait_ms": wait,
                "max_batch_size": size,
                "batching_max_size": s.batching_max_size,
                "requests_saved_share_at_peak": 1 - 1 / size,
                "mean_output_tokens": ev.get("mean_output_tokens"),
                "samples": samples,
                "min_samples": s.min_samples,
            },
            impact=ExpectedImpact(latency_change_pct=100 * wait / p95 if p95 > 0 else 0.0),
            confidence=evidence_confidence(samples, s.min_samples),
            rollback=rollback_plan(t, s, a),
        )
        return replace(state, proposed=remember(state.proposed, _KEY, at)), decision
