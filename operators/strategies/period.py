"""What strategies share: totals of a period's windows, the incumbent, proposals and their ids.

Windows of the ``canary`` variant are the change being tried; every other variant is baseline
traffic (the contract's ``baseline``; older data may say ``control``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scipy import special

from core.decisions import Decision, ExpectedImpact, RollbackLimit, stable_id
from core.decisions import Strategy as StrategyName
from core.insights import Insight
from core.settings import AnalyzerSettings, DecisionSettings
from core.stats import WindowStats
from operators.strategies.base import StrategyInput

__all__ = [
    "CANARY",
    "Memory",
    "Totals",
    "baseline",
    "due",
    "evidence_confidence",
    "find_insight",
    "incumbent",
    "make_decision",
    "remember",
    "rollback_plan",
    "seed",
    "share_confidence",
    "totals",
]

CANARY = "canary"


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over some windows, with pooled quality and count-weighted latency."""

    calls: int = 0
    ok: int = 0
    errors: int = 0
    rate_limited: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    latency_p95_ms: float = 0.0
    quality_n: int = 0
    quality_mean: float = 0.0
    quality_m2: float = 0.0  # sum of squared deviations from the mean
    seconds: float = 0.0
    peak_rate_per_s: float = 0.0
    distinct_prompts: int = 0
    repeated_calls: float = 0.0  # calls that repeated a prompt seen earlier in their window
    fixed_tokens: int = 0
    fixed_of: int = 0

    @property
    def error_rate(self) -> float:
        """Errors over calls (0 without calls)."""
        return self.errors / self.calls if self.calls else 0.0

    @property
    def cost_per_success(self) -> float | None:
        """USD per successful call."""
        return self.cost_usd / self.ok if self.ok else None

    @property
    def quality_sd(self) -> float:
        """Sample standard deviation of the quality scores."""
        return math.sqrt(self.quality_m2 / (self.quality_n - 1)) if self.quality_n > 1 else 0.0

    @property
    def rate_per_s(self) -> float:
        """Calls per second over the period."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    def merge(self, other: Totals) -> Totals:
        """Both totals together (pooled quality, call-weighted p95, longest period)."""
        n = self.calls + other.calls
        qn = self.quality_n + other.quality_n
        qmean, qm2 = self.quality_mean, self.quality_m2
        if other.quality_n:
            delta = other.quality_mean - self.quality_mean
            qmean = self.quality_mean + delta * other.quality_n / qn
            qm2 = (
                self.quality_m2
                + other.quality_m2
                + delta**2 * self.quality_n * other.quality_n / qn
            )
        p95 = (
            (self.latency_p95_ms * self.calls + other.latency_p95_ms * other.calls) / n
            if n
            else 0.0
        )
        return Totals(
            calls=n,
            ok=self.ok + other.ok,
            errors=self.errors + other.errors,
            rate_limited=self.rate_limited + other.rate_limited,
            cost_usd=self.cost_usd + other.cost_usd,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            latency_p95_ms=p95,
            quality_n=qn,
            quality_mean=qmean,
            quality_m2=qm2,
            seconds=max(self.seconds, other.seconds),
            peak_rate_per_s=max(self.peak_rate_per_s, other.peak_rate_per_s),
            distinct_prompts=self.distinct_prompts + other.distinct_prompts,
            repeated_calls=self.repeated_calls + other.repeated_calls,
            fixed_tokens=self.fixed_tokens + other.fixed_tokens,
            fixed_of=self.fixed_of + other.fixed_of,
        )


def _one(w: WindowStats) -> Totals:
    q = w.quality
    sd = q.stddev or 0.0
    return Totals(
        calls=w.count,
        ok=w.ok_count,
        errors=w.error_count,
        rate_limited=w.errors_by_type.get("rate_limited", 0),
        cost_usd=w.cost_usd,
        input_tokens=w.input_tokens,
        output_tokens=w.output_tokens,
        cache_read_tokens=w.cache_read_tokens,
        latency_p95_ms=w.latency_ms.p95,
        quality_n=q.count if q.mean is not None else 0,
        quality_mean=q.mean or 0.0,
        quality_m2=sd**2 * max(q.count - 1, 0),
        seconds=(w.window_end - w.window_start).total_seconds(),
        peak_rate_per_s=w.peak_rate_per_s,
        distinct_prompts=w.distinct_prompts,
        repeated_calls=w.repeat_ratio * w.count,
        fixed_tokens=w.prompt_tokens_fixed,
        fixed_of=w.prompt_tokens_fixed_of,
    )


def totals(windows: Iterable[WindowStats]) -> Totals:
    """The totals of ``windows`` (rates: the segments' calls over the period's length)."""
    out = Totals()
    for w in windows:
        out = out.merge(_one(w))
    return out


def baseline(windows: Iterable[WindowStats]) -> list[WindowStats]:
    """The windows of baseline traffic (every variant but ``canary``)."""
    return [w for w in windows if w.variant != CANARY]


def incumbent(period: StrategyInput) -> str | None:
    """The task's current model: the config's, else the one with the most baseline calls."""
    if period.config is not None and period.config.model:
        return period.config.model
    calls: dict[str, int] = {}
    for w in baseline(period.windows):
        calls[w.model] = calls.get(w.model, 0) + w.count
    if not calls:
        return None
    return min(calls, key=lambda m: (-calls[m], m))


def find_insight(insights: Sequence[Insight], task: str, kinds: Iterable[str]) -> Insight | None:
    """The first insight of ``task`` whose kind is one of ``kinds`` (by id, deterministic)."""
    wanted = set(kinds)
    found = sorted((i for i in insights if i.task == task and i.kind in wanted), key=lambda i: i.id)
    return found[0] if found else None


def seed(period: StrategyInput) -> int:
    """A seed from (app, task, window_start): a replay draws the same numbers."""
    key = f"{period.app}\x1f{period.task}\x1f{period.window_start.isoformat()}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def evidence_confidence(n: float, needed: float) -> float:
    """Confidence from sample size: 0.5 at ``needed`` samples, 0.75 at twice, towards 1."""
    return 1.0 - 0.5 ** (n / needed) if needed > 0 else 1.0


def share_confidence(share: float, threshold: float, n: int) -> float:
    """Chance that a share observed on ``n`` calls is truly at least ``threshold`` (normal)."""
    if n <= 0:
        return 0.0
    se = math.sqrt(share * (1 - share) / n)
    if se == 0:
        return 1.0 if share >= threshold else 0.0
    return float(special.ndtr((share - threshold) / se))


@dataclass(frozen=True, slots=True)
class Memory:
    """What a strategy proposed and when (by action key): the state of the simple strategies."""

    proposed: Mapping[str, datetime] = field(default_factory=dict)


def due(proposed: Mapping[str, datetime], key: str, now: datetime, after: timedelta) -> bool:
    """True when ``key`` was never proposed, or at least ``after`` ago."""
    last = proposed.get(key)
    return last is None or now - last >= after


def remember(proposed: Mapping[str, datetime], key: str, now: datetime) -> dict[str, datetime]:
    """A copy of ``proposed`` with ``key`` proposed at ``now``."""
    return {**proposed, key: now}


def rollback_plan(
    base: Totals, decisions: DecisionSettings, analyzers: AnalyzerSettings
) -> tuple[RollbackLimit, ...]:
    """The limits that undo a change, relative to the baseline traffic ``base``.

    p95 latency and cost per success may rise by ``max_latency_increase_pct`` and
    ``max_cost_increase_pct``; the error rate by ``analyzers.error_rate_warning`` (absolute).
    Metrics without baseline data get no limit. Quality gets none: a limit fixed from the
    incumbent's estimate at proposal time is as noisy as that estimate, so the canary judge asks
    the one quality question (not worse than the concurrent baseline by more than
    ``decisions.quality_tolerance``) instead.
    """
    out: list[RollbackLimit] = []
    if base.calls:
        p95 = base.latency_p95_ms * (1 + decisions.max_latency_increase_pct / 100)
        out.append(RollbackLimit(metric="latency_p95_ms", limit=p95))
        err = base.error_rate + analyzers.error_rate_warning
        out.append(RollbackLimit(metric="error_rate", limit=err))
    cps = base.cost_per_success
    if cps is not None:
        out.append(
            RollbackLimit(
                metric="cost_per_success_usd",
                limit=cps * (1 + decisions.max_cost_increase_pct / 100),
            )
        )
    return tuple(out)


def make_decision(
    period: StrategyInput,
    strategy: StrategyName,
    *,
    action: dict[str, Any],
    action_key: str,
    rationale: str,
    evidence: dict[str, Any],
    impact: ExpectedImpact,
    confidence: float,
    rollback: tuple[RollbackLimit, ...],
) -> Decision:
    """A proposal of ``period`` with its stable id and the period's end as its time."""
    return Decision(
        id=stable_id(
            period.app, period.task, strategy, period.window_start.isoformat(), action_key
        ),
        created_at=period.window_end,
        app=period.app,
        task=period.task,
        strategy=strategy,
        action=action,
        rationale=rationale,
        evidence=evidence,
        expected_impact=impact,
        confidence=max(0.0, min(1.0, confidence)),
        rollback_plan=rollback,
    )
