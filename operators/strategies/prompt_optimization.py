"""Prompt optimisation: when the fixed part of the prompt dominates the cost.

The fixed share is ``prompt_tokens_fixed / prompt_tokens_fixed_of`` over the task's baseline
windows (calls that reported it); the fixed prompt's share of the cost prices that share of all
input tokens at the incumbent model's input rate (without a known price: the token share).
From ``decisions.prompt_fixed_share`` of the cost on (and ``min_samples`` calls):

* provider **prompt caching** (``{"prompt": {"prompt_cache": true}}``) when the model has a
  cheaper cache-read price and the task does not cache yet (config, else no cache-read tokens);
  the saving is the fixed prompt's cost times ``1 - cache_read / input`` rate;
* else, when ``decisions.prompt_rewrite`` allows it, a **trimmed template**:
  ``{"prompt": {…}, "rewrite": "requested"}``. ``rewrite`` is no :class:`TaskConfig` field: the
  actuator asks the integrations client (Claude) for the shorter template, drops the marker and
  rolls the result out as a canary; the saving assumed is ``prompt_trim_target`` of the fixed
  prompt's cost.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core.decisions import Decision, ExpectedImpact
from core.insights import Insight
from core.settings import AnalyzerSettings, DecisionSettings
from operators.pricing import PriceTable
from operators.strategies.base import StrategyInput, StrategyName
from operators.strategies.period import (
    Memory,
    baseline,
    due,
    evidence_confidence,
    incumbent,
    make_decision,
    remember,
    rollback_plan,
    totals,
)
from operators.strategies.prices import input_rates

__all__ = ["REWRITE_KEY", "PromptOptimization"]

REWRITE_KEY = "rewrite"  # the action's marker for the actuator; not a TaskConfig field
_MTOK = 1_000_000  # tokens per million (prices are quoted per million tokens)


def _cost_insight(insights: list[Insight], task: str) -> Insight | None:
    found = [i for i in insights if i.analyzer == "cost" and "fixed_prompt_share" in i.evidence]
    own = [i for i in found if i.task == task]
    return min(own or found, key=lambda i: i.id) if found else None


class PromptOptimization:
    """Provider prompt caching or a trimmed template (see the module doc)."""

    name: StrategyName = "prompt_optimization"

    def __init__(
        self, decisions: DecisionSettings, analyzers: AnalyzerSettings, prices: PriceTable
    ) -> None:
        """Keep the thresholds and the price table (input and cache-read rates)."""
        self._s = decisions
        self._a = analyzers
        self._prices = prices

    def initial_state(self) -> Memory:
        """Nothing proposed yet."""
        return Memory()

    def propose(self, state: Memory, period: StrategyInput) -> tuple[Memory, Decision | None]:
        """Propose prompt caching or a rewrite when the fixed prompt dominates the cost."""
        s, cfg, at = self._s, period.config, period.window_end
        t = totals(baseline(period.windows))
        model = incumbent(period)
        if t.calls < s.min_samples or t.fixed_of <= 0 or t.cost_usd <= 0 or model is None:
            return state, None
        share = t.fixed_tokens / t.fixed_of
        rates = input_rates(self._prices, model)
        fixed_cost = share * t.input_tokens * rates[0] if rates else None
        cost_share = min(1.0, fixed_cost / t.cost_usd) if fixed_cost is not None else share
        if cost_share < s.prompt_fixed_share:
            return state, None
        prompt: dict[str, Any] = {}
        if cfg is not None and cfg.prompt is not None:
            prompt = {"prompt_cache": cfg.prompt.prompt_cache, "template": cfg.prompt.template,
                      "template_id": cfg.prompt.template_id}  # fmt: skip
        cached = bool(prompt.get("prompt_cache")) if cfg is not None else t.cache_read_tokens > 0
        action: dict[str, Any]
        if rates is not None and rates[1] < rates[0] and not cached:
            key, saving = "prompt_cache", cost_share * (1 - rates[1] / rates[0])
            action = {"prompt": {**prompt, "prompt_cache": True}}
            how = "use the provider's prompt cache for the fixed part"
        elif s.prompt_rewrite:
            key, saving = REWRITE_KEY, cost_share * s.prompt_trim_target
            action = {"prompt": {**prompt, "prompt_cache": cached}, REWRITE_KEY: "requested"}
            how = f"trim the template by about {s.prompt_trim_target:.0%} (LLM rewrite, canary)"
        else:
            return state, None
        if not due(state.proposed, key, at, s.repropose_after):
            return state, None
        insight = _cost_insight(period.insights, period.task)
        decision = make_decision(
            period, self.name, action=action, action_key=key,
            rationale=(
                f"The fixed prompt is {share:.0%} of the input tokens of {period.task} and "
                f"{cost_share:.0%} of its cost (from {s.prompt_fixed_share:.0%} it dominates): "
                f"{how}, saving about {saving:.0%}."
            ),
            evidence={
                "fixed_prompt_share": share, "fixed_cost_share": cost_share,
                "cost_share_source": "price table" if rates else "token share",
                "prompt_tokens_fixed": t.fixed_tokens, "prompt_tokens_fixed_of": t.fixed_of,
                "input_tokens": t.input_tokens, "cache_read_tokens": t.cache_read_tokens,
                "cost_usd": t.cost_usd, "model": model,
                "input_usd_per_mtok": rates[0] * _MTOK if rates else None,
                "cache_read_usd_per_mtok": rates[1] * _MTOK if rates else None,
                "prompt_fixed_share": s.prompt_fixed_share,
                "prompt_trim_target": s.prompt_trim_target, "calls": t.calls,
                "min_samples": s.min_samples,
                "cost_insight_id": insight.id if insight is not None else None,
            },
            impact=ExpectedImpact(cost_change_pct=-100 * saving),
            confidence=evidence_confidence(t.calls, s.min_samples),
            rollback=rollback_plan(t, s, self._a),
        )  # fmt: skip
        return replace(state, proposed=remember(state.proposed, key, at)), decision
