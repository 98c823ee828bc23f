"""Caching: an exact-match response cache when repeated prompts make it pay.

The hit rate is the pattern analyzer's ``cache_potential`` estimate when it reported one this
period, else the count-weighted repeat ratio of the task's baseline windows. With at least
``decisions.min_samples`` calls and a hit rate of at least ``cache.min_hit_rate`` the strategy
proposes ``{"cache": {"enabled": true, "ttl_s": …, "key_fields": […]}}``; the key holds model,
parameters, system prompt, prompt and tenant (:class:`core.app_config.CacheConfig`).

**TTL from the repeat interval.** A window of ``W`` seconds with ``N`` calls over ``D`` distinct
prompts repeats each prompt every ``W·D/N`` seconds on average; taking repeats as a Poisson
process, a TTL of ``-ln(1 - cache.ttl_coverage)`` times that covers that share of intervals.
It is clamped to [``cache.min_ttl``, ``cache.max_ttl``].

**Never for multi-turn or tool traffic.** Window stats carry no call attributes, so the flags
come from the task config's ``params`` (any truthy key of ``cache.exclude_params``). In the
dataflow the config is unknown: the decision says ``traffic_flags: "unchecked"`` in its
evidence and the actuator, which holds the config, must check the same params before applying.
"""

from __future__ import annotations

import math
from dataclasses import replace

from core.app_config import CacheConfig
from core.decisions import Decision, ExpectedImpact
from core.settings import AnalyzerSettings, DecisionSettings
from operators.strategies.base import StrategyInput, StrategyName
from operators.strategies.period import (
    Memory,
    baseline,
    due,
    find_insight,
    make_decision,
    remember,
    rollback_plan,
    share_confidence,
    totals,
)

__all__ = ["Caching"]

_KEY = "cache"


class Caching:
    """Exact-match cache with a TTL from the repeat interval (see the module doc)."""

    name: StrategyName = "caching"

    def __init__(self, decisions: DecisionSettings, analyzers: AnalyzerSettings) -> None:
        """Keep the thresholds (``decisions.cache_*``, ``min_samples``, the rollback limits)."""
        self._s = decisions
        self._a = analyzers

    def initial_state(self) -> Memory:
        """Nothing proposed yet."""
        return Memory()

    def propose(self, state: Memory, period: StrategyInput) -> tuple[Memory, Decision | None]:
        """Propose a cache when the period's repeats justify it."""
        s, cfg, at = self._s, period.config, period.window_end
        t = totals(baseline(period.windows))
        if t.calls < s.min_samples or not due(state.proposed, _KEY, at, s.repropose_after):
            return state, None
        if cfg is not None and (
            (cfg.cache is not None and cfg.cache.enabled)
            or any(cfg.params.get(k) for k in s.cache.exclude_params)
        ):
            return state, None
        found = find_insight(period.insights, period.task, ("cache_potential",))
        estimate = found.evidence.get("estimated_hit_rate") if found is not None else None
        hit = float(estimate) if isinstance(estimate, int | float) else t.repeated_calls / t.calls
        if hit < s.cache.min_hit_rate or t.distinct_prompts <= 0:
            return state, None
        interval = t.seconds * t.distinct_prompts / t.calls
        raw_ttl = -math.log(1 - s.cache.ttl_coverage) * interval
        lo, hi = s.cache.min_ttl.total_seconds(), s.cache.max_ttl.total_seconds()
        ttl = float(round(min(max(raw_ttl, lo), hi)))
        keys = list(CacheConfig().key_fields)
        confidence = share_confidence(hit, s.cache.min_hit_rate, t.calls)
        decision = make_decision(
            period,
            self.name,
            action={"cache": {"enabled": True, "ttl_s": ttl, "key_fields": keys}},
            action_key=f"{_KEY}:{ttl:g}",
            rationale=(
                f"Cache {period.task}: {hit:.0%} of its {t.calls} calls repeat a prompt "
                f"(at least {s.cache.min_hit_rate:.0%} needed); a prompt repeats every "
                f"{interval:.0f} s on average, so a {ttl:.0f} s TTL covers "
                f"{s.cache.ttl_coverage:.0%} of repeats."
            ),
            evidence={
                "estimated_hit_rate": hit,
                "hit_rate_source": "pattern insight" if estimate is not None else "windows",
                "insight_id": found.id if found is not None else None,
                "calls": t.calls,
                "distinct_prompts": t.distinct_prompts,
                "period_seconds": t.seconds,
                "mean_repeat_interval_s": interval,
                "ttl_raw_s": raw_ttl,
                "ttl_s": ttl,
                "cache_min_hit_rate": s.cache.min_hit_rate,
                "cache_ttl_coverage": s.cache.ttl_coverage,
                "cache_min_ttl_s": lo,
                "cache_max_ttl_s": hi,
                "min_samples": s.min_samples,
                "key_fields": keys,
                "traffic_flags": "checked" if cfg is not None else "unchecked",
                "exclude_params": list(s.cache.exclude_params),
                "baseline_quality_mean": t.quality_mean if t.quality_n else None,
            },
            impact=ExpectedImpact(cost_change_pct=-100 * hit, latency_change_pct=-100 * hit),
            confidence=confidence,
            rollback=rollback_plan(t, s, self._a),
        )
        return replace(state, proposed=remember(state.proposed, _KEY, at)), decision
