"""``[canary]`` and ``[budgets]``: rollouts and their judge; spend limits per app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.settings.rules import Check, Num
from core.settings.spec import setting

__all__ = ["BudgetSettings", "CanarySettings"]


def _is_stage_list(value: Any) -> bool:
    if not isinstance(value, list | tuple) or not value:
        return False
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1 for v in value
    ):
        return False
    return list(value) == sorted(set(value)) and value[0] < 1


_STAGES = Check(
    _is_stage_list,
    "a list of increasing weights in (0, 1] (a trailing 1.0 is allowed and means promotion)",
    lambda v: tuple(float(x) for x in v),
)


@dataclass(frozen=True, slots=True)
class CanarySettings:
    """Canary rollouts and the judge that advances, holds or rolls them back."""

    stages: tuple[float, ...] = setting(
        (0.01, 0.05, 0.1, 0.25, 0.5),
        "the weights a rollout may take, increasing, below 1 (a trailing 1.0 is accepted and "
        "means promotion)",
        _STAGES,
    )
    min_stage_duration: timedelta = setting(
        timedelta(minutes=5), "each weight is held at least this long"
    )
    min_samples: int = setting(100, "calls per side before anything is judged")
    alpha: float = setting(
        0.05,
        "error rate of each anytime-valid band: promoting a change worse than the tolerance, "
        "failing an equal one",
        Check(lambda v: Num(0, 0.5).accepts(v) and v > 0, "a number within (0, 0.5]", float),
    )
    max_error_rate: float = setting(0.05, "gate: a canary error rate shown above this fails")
    max_error_rate_increase: float = setting(
        0.01, "tolerated absolute error-rate increase (effect size)"
    )
    max_p95_ms: float = setting(5000.0, "gate: canary p95 latency above this fails")
    max_p99_ms: float = setting(10000.0, "gate: canary p99 latency above this fails")
    max_latency_increase: float = setting(
        0.10, "tolerated relative increase of the geometric-mean latency"
    )
    quality_floor: float = setting(0.0, "gate: canary mean quality below this fails (0: off)")
    max_cost_increase: float = setting(
        0.10,
        "tolerated relative cost-per-success increase (quality uses "
        "`decisions.quality_tolerance`; `canary.quality_tolerance` was retired)",
    )
    max_rollout_duration: timedelta = setting(
        timedelta(days=3),
        "a rollout without a verdict this long is rolled back (`canary.max_stage_duration` was "
        "retired: setting it is an error that names the replacement)",
    )
    risk_budget: float = setting(
        0.005,
        "quality a task may lose per call while a change is tested: plans the canary's weight",
        Check(lambda v: Num(0, 1).accepts(v) and v > 0, "a number within (0, 1]", float),
    )
    shadow_share: float = setting(
        0.5,
        "share of scored calls on which apps are asked to run a candidate model in shadow "
        "(0: never ask)",
        Num(0, 1),
    )
    post_promotion_watch: timedelta = setting(
        timedelta(minutes=30), "how long a promoted change stays under the judge"
    )
    holdback: float = setting(
        0.05,
        "share of calls kept on the old config during the watch, as a concurrent control "
        "(0: compare with the pre-promotion baseline only)",
        Check(lambda v: Num(0).accepts(v) and v < 1, "a number within [0, 1)", float),
    )


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """Spend limits per app (0: no budget) and the shares of them that warn."""

    daily_usd: float = setting(0.0, "daily spend limit per app (0: none)")
    monthly_usd: float = setting(0.0, "monthly spend limit per app (0: none)")
    warning: float = setting(0.8, "share of a budget that warns")
    critical: float = setting(0.9, "share of a budget that is critical")
