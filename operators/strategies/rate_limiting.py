"""Rate limiting: token-bucket limits per (app, task), moved in bounded, spaced steps.

Triggers, in order (at least ``decisions.min_samples`` calls in the period):

* ``rate_limited`` **errors** in bursts: their share of calls is at least
  ``rate_limit.trigger_share``; the target is the provider's rate (``provider_limits``) when known,
  else one step (``rate_limit.step``) above the task's sustained rate, so the client's queue
  holds the bursts the provider answered with 429 and still drains. A first limit is not
  bounded by a step (there is none to step from). A limit at or below the sustained rate
  starves the task (its queue grows without bound): when the provider's known rate is at most
  the task's, or more than ``1 - 1/(1 + rate_limit.step)`` of calls are rate-limited, the
  overload is sustained, no client limit helps, and nothing is proposed;
* **budget burn**: an app-wide cost insight (``daily_budget``, ``monthly_budget`` or their
  ``_projection``); the target scales the current rate by ``budget / projected spend``;
* **provider limit**: the peak rate exceeds ``decisions.provider_limits[provider]`` while the
  sustained rate stays below it.

The target never exceeds the provider's limits, and each step moves at most ``rate_limit.step``
(±20 %) from the reference: the limit in force (config, else the last one proposed); a first
limit against 429s or peaks has none and goes to its target, a budget's steps from the
observed rate. Steps are at least ``rate_limit.spacing`` apart. Tokens per minute follow from
the mean tokens per call; the bucket's burst holds ``rate_limit.burst`` of traffic at the rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.decisions import Decision, ExpectedImpact
from core.insights import APP_WIDE, Insight
from core.settings import AnalyzerSettings, DecisionSettings, ProviderLimit
from operators.strategies.base import StrategyInput, StrategyName
from operators.strategies.period import (
    evidence_confidence,
    find_insight,
    incumbent,
    make_decision,
    rollback_plan,
    share_confidence,
    totals,
)
from operators.strategies.prices import provider_of

__all__ = ["RateLimitState", "RateLimiting"]

BUDGET_KINDS = (
    "daily_budget",
    "monthly_budget",
    "daily_budget_projection",
    "monthly_budget_projection",
)


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """The last limit proposed for the task and when."""

    at: datetime | None = None
    requests_per_s: float | None = None
    tokens_per_min: float | None = None


def _bounded(target: float, reference: float | None, step: float) -> float:
    if reference is None or reference <= 0:
        return target
    return min(max(target, reference * (1 - step)), reference * (1 + step))


def _budget_factor(insight: Insight) -> float | None:
    """Budget over projected spend when the projection exceeds the budget, else ``None``."""
    projected = insight.evidence.get("projected_usd")
    budget = insight.evidence.get("budget_usd")
    if not isinstance(projected, int | float) or not isinstance(budget, int | float):
        return None
    return budget / projected if projected > budget > 0 else None


def _cap(value: float, limit: float | None) -> float:
    return value if limit is None else min(value, limit)


class RateLimiting:
    """Requests/s and tokens/min limits from throttling, budgets and provider limits."""

    name: StrategyName = "rate_limiting"

    def __init__(self, decisions: DecisionSettings, analyzers: AnalyzerSettings) -> None:
        """Keep the thresholds (``decisions.rate_limit*``, ``provider_limits``, ``min_samples``)."""
        self._s = decisions
        self._a = analyzers

    def initial_state(self) -> RateLimitState:
        """No limit proposed yet."""
        return RateLimitState()

    def propose(
        self, state: RateLimitState, period: StrategyInput
    ) -> tuple[RateLimitState, Decision | None]:
        """Propose the next limit step when a trigger fires and the last step is old enough."""
        s, cfg, at = self._s, period.config, period.window_end
        t = totals(period.windows)
        if t.calls < s.min_samples or t.seconds <= 0:
            return state, None
        if state.at is not None and at - state.at < s.rate_limit.spacing:
            return state, None
        model = incumbent(period)
        provider = cfg.provider if cfg is not None and cfg.provider else None
        provider = provider or (provider_of(model) if model else None)
        plimit = s.provider_limits.get(provider or "", ProviderLimit())
        current = cfg.rate_limit if cfg is not None else None
        ref_rps = current.requests_per_s if current is not None else state.requests_per_s
        ref_tpm = current.tokens_per_min if current is not None else state.tokens_per_min
        share = t.rate_limited / t.calls
        budget = find_insight(period.insights, APP_WIDE, BUDGET_KINDS)
        evidence: dict[str, Any] = {
            "calls": t.calls, "rate_limited": t.rate_limited, "rate_limited_share": share,
            "rate_per_s": t.rate_per_s, "peak_rate_per_s": t.peak_rate_per_s,
            "period_seconds": t.seconds, "provider": provider,
            "provider_requests_per_s": plimit.requests_per_s,
            "provider_tokens_per_min": plimit.tokens_per_min,
            "current_requests_per_s": ref_rps, "current_tokens_per_min": ref_tpm,
            "rate_limited_share_threshold": s.rate_limit.trigger_share, "step": s.rate_limit.step,
            "min_samples": s.min_samples,
        }  # fmt: skip
        cost_pct = 0.0
        throttled = share >= s.rate_limit.trigger_share and t.rate_limited > 0
        known = plimit.requests_per_s
        used_tpm = (t.input_tokens + t.output_tokens) / t.seconds * 60
        over = (known is not None and known <= t.rate_per_s) or (
            plimit.tokens_per_min is not None and plimit.tokens_per_min <= used_tpm
        )
        # sustained overload: a limit that stops the 429s starves the task (only a budget cuts)
        starved = over or (throttled and share > 1 - 1 / (1 + s.rate_limit.step))
        if throttled and not starved:
            trigger = "rate_limited"
            target = known if known is not None else t.rate_per_s * (1 + s.rate_limit.step)
            why = (
                f"{share:.1%} of {t.calls} calls were rate-limited in bursts above the task's "
                f"{t.rate_per_s:.3g} calls/s; a client limit at "
                + (f"{provider}'s {known:g}/s" if known is not None else "one step above it")
                + " queues the bursts instead"
            )
            confidence = share_confidence(share, s.rate_limit.trigger_share, t.calls)
        elif budget is not None and (factor := _budget_factor(budget)) is not None:
            trigger = "budget"
            target = t.rate_per_s * factor
            why = f"the {budget.kind.replace('_', ' ')} insight ({budget.message})"
            confidence = evidence_confidence(t.calls, s.min_samples)
            evidence |= {"budget_insight_id": budget.id, "budget_factor": factor}
        elif (
            not starved
            and plimit.requests_per_s is not None
            and t.peak_rate_per_s > plimit.requests_per_s
        ):
            trigger = "provider_limit"
            target = plimit.requests_per_s
            why = f"peaks of {t.peak_rate_per_s:.3g} calls/s exceed {provider}'s limit"
            confidence = evidence_confidence(t.calls, s.min_samples)
        else:
            return state, None
        # a first limit against 429s or peaks starts at the provider's rate (none to step from)
        first = trigger != "budget" and ref_rps is None
        reference = ref_rps if ref_rps is not None or first else t.rate_per_s
        rps = _bounded(_cap(target, plimit.requests_per_s), reference, s.rate_limit.step)
        tokens_per_call = (t.input_tokens + t.output_tokens) / t.calls
        tpm = rps * 60 * tokens_per_call
        tpm_ref = ref_tpm if ref_tpm is not None or first else t.rate_per_s * 60 * tokens_per_call
        tpm = _bounded(_cap(tpm, plimit.tokens_per_min), tpm_ref, s.rate_limit.step)
        rps, tpm = round(rps, 3), round(tpm)
        if rps <= 0 or tpm <= 0 or (rps == ref_rps and tpm == ref_tpm):
            return state, None
        burst = max(1, math.ceil(rps * s.rate_limit.burst.total_seconds()))
        if trigger == "budget" and t.rate_per_s > 0:
            cost_pct = min(0.0, (rps / t.rate_per_s - 1) * 100)
        evidence |= {
            "trigger": trigger, "target_requests_per_s": target, "requests_per_s": rps,
            "tokens_per_min": tpm, "tokens_per_call": tokens_per_call, "burst": burst,
            "reference_requests_per_s": reference, "first_limit": first,
            "burst_seconds": s.rate_limit.burst.total_seconds(),
            "spacing_s": s.rate_limit.spacing.total_seconds(),
        }  # fmt: skip
        decision = make_decision(
            period, self.name,
            action={"rate_limit": {"requests_per_s": rps, "tokens_per_min": tpm, "burst": burst}},
            action_key=f"{rps:g}/{tpm:g}/{burst}",
            rationale=(
                f"Limit {period.task} to {rps:g} requests/s and {tpm:g} tokens/min (burst "
                f"{burst}) because {why}"
                + (
                    f"; the step from {reference:.3g}/s is bounded to ±{s.rate_limit.step:.0%}."
                    if reference is not None
                    else "."
                )
            ),
            evidence=evidence,
            impact=ExpectedImpact(cost_change_pct=cost_pct),
            confidence=confidence,
            rollback=rollback_plan(t, s, self._a),
        )  # fmt: skip
        return RateLimitState(at=at, requests_per_s=rps, tokens_per_min=tpm), decision
