"""``[decisions]``: the decision strategies and their coordinator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from core.settings.rules import Int, Num, Table
from core.settings.spec import section, setting

__all__ = [
    "CacheStrategySettings",
    "DecisionSettings",
    "ProviderLimit",
    "RateLimitStrategySettings",
]

_BIG = 1e9  # upper bound of the unbounded percentages and weights


@dataclass(frozen=True, slots=True)
class ProviderLimit:
    """A provider's limits for one account (``None``: not limited)."""

    requests_per_s: float | None = None
    tokens_per_min: float | None = None


def _share(lo: float = 0.0, hi: float = 1.0) -> Num:
    return Num(lo, hi)


@dataclass(frozen=True, slots=True)
class CacheStrategySettings:
    """The caching strategy: when a cache pays and how long its entries live."""

    min_hit_rate: float = setting(
        0.2,
        "expected hit rate from which a cache pays",
        _share(),
        old="decisions.cache_min_hit_rate",
    )
    ttl_coverage: float = setting(
        0.95,
        "share of repeat intervals the cache TTL should cover",
        _share(1e-6, 0.999999),
        old="decisions.cache_ttl_coverage",
    )
    min_ttl: timedelta = setting(
        timedelta(seconds=30), "shortest cache TTL proposed", old="decisions.cache_min_ttl"
    )
    max_ttl: timedelta = setting(
        timedelta(hours=24), "longest cache TTL proposed", old="decisions.cache_max_ttl"
    )
    exclude_params: tuple[str, ...] = setting(
        ("multi_turn", "tools"),
        "task `params` that forbid a cache",
        old="decisions.cache_exclude_params",
    )


@dataclass(frozen=True, slots=True)
class RateLimitStrategySettings:
    """The rate-limiting strategy: when it triggers and how far and how often a limit moves."""

    trigger_share: float = setting(
        0.01,
        "share of calls failing with `rate_limited` that triggers a limit",
        _share(),
        old="decisions.rate_limited_share",
    )
    step: float = setting(
        0.2,
        "largest relative change of a limit per step",
        _share(1e-6),
        old="decisions.rate_limit_step",
    )
    spacing: timedelta = setting(
        timedelta(minutes=30), "between two limit steps", old="decisions.rate_limit_spacing"
    )
    burst: timedelta = setting(
        timedelta(seconds=1),
        "token-bucket burst, as time at the rate",
        old="decisions.rate_limit_burst",
    )


@dataclass(frozen=True, slots=True)
class DecisionSettings:
    """The decision strategies and their coordinator: every threshold they compare against."""

    cooldown: timedelta = setting(timedelta(minutes=15), "between two changes of one (app, task)")
    repropose_after: timedelta = setting(
        timedelta(hours=1), "before a strategy proposes the same change again"
    )
    min_confidence: float = setting(0.7, "proposals below it are rejected", _share())
    max_cost_increase_pct: float = setting(
        10.0, "safety limit on a proposal's expected cost increase (%)", Num(0, _BIG)
    )
    max_latency_increase_pct: float = setting(
        20.0, "safety limit on a proposal's expected latency increase (%)", Num(0, _BIG)
    )
    min_quality: float = setting(
        0.0, "floor of the expected quality after a change (0: none)", _share()
    )
    min_samples: int = setting(
        100, "calls (quality scores for models) before a strategy judges", Int(1)
    )
    history_windows: int = setting(
        60, "periods of per-model totals model selection remembers", Int(1)
    )
    candidates: tuple[str, ...] = setting(
        (), "models model selection may propose for every app", shown="empty"
    )
    app_candidates: Mapping[str, tuple[str, ...]] = setting(
        {},
        "`{APP = [models]}` added per app (provider and price from the price table)",
        Table("a table {APP = [models]}"),
        shown="empty",
    )
    quality_tolerance: float = setting(
        0.02,
        "**the** quality tolerance: model selection never proposes a model statistically worse "
        "than the incumbent by more than it (one-sided test at `quality_alpha`), and the canary "
        "judge and the health watch promote only a change shown not worse by more than it",
        _share(),
    )
    quality_alpha: float = setting(
        0.05, 'one-sided significance of "statistically worse"', _share(1e-9, 0.5)
    )
    prior_quality_sd: float = setting(
        0.02, "prior spread of an unseen model's quality around the incumbent's", _share(1e-6)
    )
    thompson_draws: int = setting(
        2000, "posterior draws estimating each model's chance to be best", Int(100)
    )
    weight_cost: float = setting(
        1.0, "objective of model selection (lower wins): relative cost ...", Num(0, _BIG)
    )
    weight_latency: float = setting(0.0, "... plus relative p95 latency ...", Num(0, _BIG))
    weight_quality: float = setting(0.0, "... minus quality gain in tolerances", Num(0, _BIG))
    provider_limits: Mapping[str, ProviderLimit] = setting(
        {},
        "`{PROVIDER = {requests_per_s, tokens_per_min}}`",
        Table("a table {PROVIDER = {requests_per_s, tokens_per_min}}"),
        shown="empty",
    )
    batching_headroom_share: float = setting(
        0.5, "share of the p95 SLO headroom a batch may wait", _share(1e-6)
    )
    batching_max_size: int = setting(32, "largest batch", Int(2))
    prompt_fixed_share: float = setting(
        0.5, "fixed-prompt share of the input from which prompts change", _share()
    )
    prompt_trim_target: float = setting(
        0.3, "share of the fixed prompt a trimmed template should drop", _share(1e-6)
    )
    prompt_rewrite: bool = setting(False, "ask the actuator for an LLM rewrite of the template")
    require_approval: tuple[str, ...] = setting(
        (), "strategies or apps whose decisions wait for a person", shown="`[]`"
    )
    rolled_back_memory: timedelta = setting(
        timedelta(days=1), "a change rolled back for a task is not proposed again sooner"
    )

    cache: CacheStrategySettings = section(CacheStrategySettings)
    rate_limit: RateLimitStrategySettings = section(RateLimitStrategySettings)

    def __post_init__(self) -> None:
        # Loaded mappings arrive as plain JSON data: give them their types (frozen: set directly).
        apps = {str(k): tuple(str(m) for m in v) for k, v in self.app_candidates.items()}
        object.__setattr__(self, "app_candidates", apps)
        limits = {
            str(k): v if isinstance(v, ProviderLimit) else ProviderLimit(**dict(v))
            for k, v in self.provider_limits.items()
        }
        object.__setattr__(self, "provider_limits", limits)

    def candidates_for(self, app: str) -> tuple[str, ...]:
        """The candidate models of ``app``: the global list, then the app's own."""
        own = self.app_candidates.get(app, ())
        return tuple(dict.fromkeys((*self.candidates, *own)))
