"""Model selection: Thompson sampling over candidate models, explored through a canary.

Per (app, task) the strategy keeps per-model totals of the last ``decisions.history_windows``
periods (every variant: a candidate's data is its canary traffic). Each period:

1. The incumbent is the config's model, else the model with the most baseline calls; it needs
   ``decisions.min_samples`` quality scores, or nothing is judged.
2. **Hard rule.** A candidate whose quality is statistically worse than the incumbent's by more
   than ``quality_tolerance`` (one-sided z-test of ``q_c - q_i + tolerance < 0`` at
   ``quality_alpha``) is never proposed; nor is one whose observed p95 breaks the SLO
   (``analyzers.latency_p95_warning_ms``), one without a known price, or one proposed less than
   ``repropose_after`` ago (its canary is still running).
3. **Posterior.** Quality ~ Normal: the incumbent's from its data; a candidate's combines a prior
   centred on the incumbent's mean (spread ``prior_quality_sd``) with its own scores. Cost is
   the observed cost per success ratio once a candidate has ``min_samples`` calls, else the price
   table's ratio for the incumbent's mean tokens per call; latency likewise (unseen: unchanged).
4. **Objective** (lower wins): ``weight_cost * cost_ratio + weight_latency * p95_ratio -
   weight_quality * quality_gain / tolerance``; a draw where a candidate's quality falls more
   than the tolerance below the incumbent's makes it infeasible, and so does an incumbent whose
   p95 breaks the SLO (the evidence then says whether the candidate restores it: the
   coordinator lets such a change cost more than its limit). ``thompson_draws`` posterior
   draws (RNG seeded from app, task, window start) give each model's chance of being best; the
   likeliest candidate is proposed when it beats the incumbent's chance, with that chance as the
   confidence. The decision is a canary: the judge, not this strategy, promotes it; its
   evidence projects how long the judge will need (``expected_time_to_verdict_h``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from scipy import special

from core.decisions import Decision, ExpectedImpact
from core.settings import AnalyzerSettings, DecisionSettings
from operators.pricing import PriceTable
from operators.sequential import information_needed, rho_for
from operators.strategies.base import StrategyInput, StrategyName
from operators.strategies.period import (
    Totals,
    due,
    incumbent,
    make_decision,
    remember,
    rollback_plan,
    seed,
    totals,
)
from operators.strategies.prices import call_cost, provider_of

__all__ = ["ModelSelection", "ModelSelectionState", "quality_worse_p"]


@dataclass(frozen=True, slots=True)
class ModelSelectionState:
    """Per-model totals of recent periods (oldest first) and when each model was proposed."""

    history: tuple[tuple[tuple[str, Totals], ...], ...] = ()
    proposed: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Arm:
    model: str
    mean: float  # posterior mean quality
    sd: float  # posterior sd of the mean quality
    cost_ratio: float
    latency_ratio: float
    evidence: dict[str, Any]


def _sd(t: Totals, fallback: float) -> float:
    return t.quality_sd if t.quality_sd > 0 else fallback


def _restores_slo(base: Totals, arm: _Arm, slo_ms: float) -> bool:
    """The incumbent breaks the p95 latency SLO and the candidate, as seen, meets it."""
    p95 = arm.evidence.get("latency_p95_ms")
    return base.latency_p95_ms > slo_ms and isinstance(p95, int | float) and p95 <= slo_ms


_PLANNING_WEIGHT = 0.25  # canary weight the projection assumes (the judge plans its own)


def verdict_eta_h(
    base: Totals, candidate_mean: float, s: DecisionSettings, scored_per_s: float
) -> float | None:
    """Hours until the canary judge's quality band decides, projected at proposal time.

    Two groups at ``_PLANNING_WEIGHT`` of the task's scored calls, the incumbent's variance on
    both sides, the candidate's expected gap; ``None`` without a rate or a variance. A quiet
    task may need days: the decision says so.
    """
    var = base.quality_sd**2 if base.quality_sd > 0 else 0.25
    if scored_per_s <= 0:
        return None
    w = _PLANNING_WEIGHT
    info_per_s = w * (1 - w) * scored_per_s / var
    tol = max(s.quality_tolerance, 1e-3)
    distance = abs(candidate_mean - base.quality_mean + s.quality_tolerance)
    needed = information_needed(distance, s.quality_alpha, rho_for(tol, s.quality_alpha))
    return needed / info_per_s / 3600 if math.isfinite(needed) else None


def quality_worse_p(cand: Totals, inc: Totals, tolerance: float, prior_sd: float) -> float | None:
    """One-sided p-value of "the candidate's quality is worse by more than ``tolerance``".

    ``None`` with fewer than two candidate scores (nothing can be shown).
    """
    if cand.quality_n < 2 or inc.quality_n < 2:
        return None
    sd_i = _sd(inc, prior_sd)
    se = math.sqrt(_sd(cand, sd_i) ** 2 / cand.quality_n + sd_i**2 / inc.quality_n)
    z = (cand.quality_mean - inc.quality_mean + tolerance) / se
    return float(special.ndtr(z))


class ModelSelection:
    """Cheapest model meeting the quality and latency SLOs, explored by Thompson sampling."""

    name: StrategyName = "model_selection"

    def __init__(
        self, decisions: DecisionSettings, analyzers: AnalyzerSettings, prices: PriceTable
    ) -> None:
        """Keep the thresholds and the price table.

        Args:
            decisions: Candidates, tolerance, priors, weights, draws, history and spacing.
            analyzers: The p95 SLO and the error-rate allowance of the rollback plan.
            prices: Prices of models that have no traffic yet.
        """
        self._s = decisions
        self._a = analyzers
        self._prices = prices

    def initial_state(self) -> ModelSelectionState:
        """No history, nothing proposed."""
        return ModelSelectionState()

    def propose(
        self, state: ModelSelectionState, period: StrategyInput
    ) -> tuple[ModelSelectionState, Decision | None]:
        """Learn the period's per-model totals, then maybe propose a candidate as a canary."""
        now: dict[str, list[Any]] = {}
        for w in period.windows:
            now.setdefault(w.model, []).append(w)
        current = tuple(sorted((m, totals(ws)) for m, ws in now.items()))
        state = replace(state, history=(*state.history, current)[-self._s.history_windows :])
        merged: dict[str, Totals] = {}
        for past in state.history:
            for model, t in past:
                merged[model] = merged.get(model, Totals()).merge(t)
        inc = incumbent(period)
        base = merged.get(inc) if inc else None
        if inc is None or base is None or base.quality_n < self._s.min_samples:
            return state, None
        at = period.window_end
        names = [
            m
            for m in self._s.candidates_for(period.app)
            if m != inc and due(state.proposed, m, at, self._s.repropose_after)
        ]
        arms, excluded = self._arms(inc, base, merged, names)
        if not arms:
            return state, None
        p_best, p_inc = self._sample(period, base, arms)
        best = max(range(len(arms)), key=lambda i: (p_best[i], -i))
        if p_best[best] <= p_inc:
            return state, None
        arm = arms[best]
        span = len(state.history) * (period.window_end - period.window_start).total_seconds()
        eta = verdict_eta_h(base, arm.mean, self._s, base.quality_n / span if span > 0 else 0.0)
        decision = self._decision(period, inc, base, arm, arms, p_best, p_inc, excluded, eta)
        return replace(state, proposed=remember(state.proposed, arm.model, at)), decision

    def _arms(
        self, inc: str, base: Totals, merged: Mapping[str, Totals], names: list[str]
    ) -> tuple[list[_Arm], dict[str, str]]:
        s = self._s
        sd_i = _sd(base, s.prior_quality_sd)
        mean_in = base.input_tokens / base.calls if base.calls else 0.0
        mean_out = base.output_tokens / base.calls if base.calls else 0.0
        inc_price = call_cost(self._prices, inc, mean_in, mean_out)
        if inc_price is None and base.calls:
            inc_price = base.cost_usd / base.calls
        arms: list[_Arm] = []
        excluded: dict[str, str] = {}
        for m in names:
            t = merged.get(m, Totals())
            p = quality_worse_p(t, base, s.quality_tolerance, s.prior_quality_sd)
            if p is not None and p < s.quality_alpha:
                excluded[m] = f"quality worse by more than the tolerance (p = {p:.3g})"
                continue
            seen = t.calls >= s.min_samples and t.ok > 0
            if seen and t.latency_p95_ms > self._a.latency_p95_warning_ms:
                excluded[m] = f"p95 {t.latency_p95_ms:.0f} ms over the SLO"
                continue
            price = call_cost(self._prices, m, mean_in, mean_out)
            inc_cps = base.cost_per_success
            if seen and t.cost_per_success is not None and inc_cps:
                cost_ratio, source = t.cost_per_success / inc_cps, "observed"
            elif price is not None and inc_price:
                cost_ratio, source = price / inc_price, "price table"
            else:
                excluded[m] = "no price and no traffic"
                continue
            latency_ratio = (
                t.latency_p95_ms / base.latency_p95_ms if seen and base.latency_p95_ms else 1.0
            )
            sd_c = _sd(t, sd_i)
            prec = 1 / s.prior_quality_sd**2 + t.quality_n / sd_c**2
            mean = (
                base.quality_mean / s.prior_quality_sd**2 + t.quality_n * t.quality_mean / sd_c**2
            ) / prec
            arms.append(
                _Arm(
                    m,
                    mean,
                    math.sqrt(1 / prec),
                    cost_ratio,
                    latency_ratio,
                    {
                        "calls": t.calls,
                        "quality_n": t.quality_n,
                        "quality_mean": t.quality_mean if t.quality_n else None,
                        "posterior_quality_mean": mean,
                        "posterior_quality_sd": math.sqrt(1 / prec),
                        "worse_p_value": p,
                        "cost_ratio": cost_ratio,
                        "cost_source": source,
                        "latency_p95_ms": t.latency_p95_ms if seen else None,
                        "latency_ratio": latency_ratio,
                    },
                )
            )
        return arms, excluded

    def _sample(
        self, period: StrategyInput, base: Totals, arms: list[_Arm]
    ) -> tuple[list[float], float]:
        s = self._s
        rng = np.random.default_rng(seed(period))
        d = s.thompson_draws
        se_i = _sd(base, s.prior_quality_sd) / math.sqrt(base.quality_n)
        q_i = rng.normal(base.quality_mean, se_i, d)
        tol = s.quality_tolerance
        # An incumbent over the latency SLO is not a feasible choice: the cheapest model that
        # meets the SLOs is the objective, so a dearer candidate that meets it can win.
        incumbent_ok = base.latency_p95_ms <= self._a.latency_p95_warning_ms
        objective = [np.full(d, s.weight_cost + s.weight_latency if incumbent_ok else np.inf)]
        for arm in arms:
            q = rng.normal(arm.mean, arm.sd, d)
            gain = (q - q_i) / tol if tol > 0 else np.zeros(d)
            value = (
                s.weight_cost * arm.cost_ratio
                + s.weight_latency * arm.latency_ratio
                - s.weight_quality * gain
            )
            objective.append(np.where(q >= q_i - tol, value, np.inf))
        best = np.argmin(np.vstack(objective), axis=0)  # ties: the incumbent, then list order
        counts = np.bincount(best, minlength=len(arms) + 1) / d
        return [float(c) for c in counts[1:]], float(counts[0])

    def _decision(
        self, period: StrategyInput, inc: str, base: Totals, arm: _Arm, arms: list[_Arm],
        p_best: list[float], p_inc: float, excluded: dict[str, str], eta_h: float | None,
    ) -> Decision:  # fmt: skip
        s = self._s
        provider = provider_of(arm.model)
        action: dict[str, Any] = {"model": arm.model}
        if provider is not None:
            action["provider"] = provider
        impact = ExpectedImpact(
            cost_change_pct=(arm.cost_ratio - 1) * 100,
            latency_change_pct=(arm.latency_ratio - 1) * 100,
            quality_change=arm.mean - base.quality_mean,
        )
        chance = p_best[arms.index(arm)]
        rationale = (
            f"Try {arm.model} as a canary instead of {inc}: {chance:.0%} chance of being the "
            f"best model ({p_inc:.0%} for {inc}) at {arm.cost_ratio:.2f}x the cost, quality "
            f"{arm.mean:.3f} vs {base.quality_mean:.3f} (tolerance {s.quality_tolerance})."
        )
        evidence: dict[str, Any] = {
            "incumbent": inc, "candidate": arm.model,
            "baseline_quality_mean": base.quality_mean, "baseline_quality_n": base.quality_n,
            "baseline_quality_sd": base.quality_sd, "baseline_calls": base.calls,
            "baseline_latency_p95_ms": base.latency_p95_ms,
            "baseline_cost_per_success_usd": base.cost_per_success,
            "p_best": {a.model: p for a, p in zip(arms, p_best, strict=True)} | {inc: p_inc},
            "candidates": {a.model: a.evidence for a in arms}, "excluded": excluded,
            "quality_tolerance": s.quality_tolerance, "quality_alpha": s.quality_alpha,
            "prior_quality_sd": s.prior_quality_sd, "min_samples": s.min_samples,
            "latency_slo_ms": self._a.latency_p95_warning_ms, "draws": s.thompson_draws,
            "weights": {"cost": s.weight_cost, "latency": s.weight_latency,
                        "quality": s.weight_quality},
            "history_windows": s.history_windows,
            "restores_latency_slo": _restores_slo(base, arm, self._a.latency_p95_warning_ms),
            "expected_time_to_verdict_h": eta_h,
            "expected_time_to_verdict_basis": (
                f"two groups at {_PLANNING_WEIGHT:.0%} canary weight, the task's scored calls "
                "per second over the history; shadow pairs shorten it"
            ),
        }  # fmt: skip
        return make_decision(
            period, self.name, action=action, action_key=arm.model, rationale=rationale,
            evidence=evidence, impact=impact, confidence=chance,
            rollback=rollback_plan(base, s, self._a),
        )  # fmt: skip
