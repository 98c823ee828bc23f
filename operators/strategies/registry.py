"""The strategies of this release, in one table: adding one is its module plus one entry here.

Each entry names the strategy (one of :data:`core.decisions.Strategy`, which decisions, the
judge's guarded metrics and the API's filters use) and builds it from the settings:
``decisions.*`` holds their thresholds, ``analyzers.*`` the SLOs they share with the analyzers,
and ``processor.prices`` the price overrides of the model catalogue. ``rollback`` is a decision
the rollout makes, not a strategy that proposes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.decisions import Strategy as StrategyName
from core.settings import Settings
from operators.pricing import PriceTable
from operators.strategies.base import Strategy
from operators.strategies.batching import Batching
from operators.strategies.caching import Caching
from operators.strategies.model_selection import ModelSelection
from operators.strategies.prompt_optimization import PromptOptimization
from operators.strategies.rate_limiting import RateLimiting

__all__ = ["STRATEGY_ENTRIES", "StrategyEntry", "build_strategies"]


@dataclass(frozen=True, slots=True)
class StrategyEntry:
    """One strategy: its name and how it is built from the settings and the price table."""

    name: StrategyName
    build: Callable[[Settings, PriceTable], Strategy[Any]]


STRATEGY_ENTRIES: tuple[StrategyEntry, ...] = (
    StrategyEntry("model_selection", lambda s, p: ModelSelection(s.decisions, s.analyzers, p)),
    StrategyEntry("caching", lambda s, p: Caching(s.decisions, s.analyzers)),
    StrategyEntry("rate_limiting", lambda s, p: RateLimiting(s.decisions, s.analyzers)),
    StrategyEntry("batching", lambda s, p: Batching(s.decisions, s.analyzers)),
    StrategyEntry(
        "prompt_optimization", lambda s, p: PromptOptimization(s.decisions, s.analyzers, p)
    ),
)


def build_strategies(settings: Settings) -> list[Strategy[Any]]:
    """The strategies of this release, configured from ``settings``, in table order."""
    prices = PriceTable(settings.processor.prices)
    return [entry.build(settings, prices) for entry in STRATEGY_ENTRIES]
