"""The decision strategies: plain typed modules, one per change, run per app by ``StrategyRunner``.

Each proposes at most one :class:`core.decisions.Decision` per (app, task) and period; the
actuator passes the proposals of an (app, task) through :func:`coordinate`.
"""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from operators.pricing import PriceTable
from operators.strategies.base import Strategy, StrategyInput
from operators.strategies.batching import Batching
from operators.strategies.caching import Caching
from operators.strategies.coordinator import coordinate, expected_value
from operators.strategies.model_selection import ModelSelection
from operators.strategies.prompt_optimization import REWRITE_KEY, PromptOptimization
from operators.strategies.rate_limiting import RateLimiting
from operators.strategies.runner import StrategyRunner

__all__ = [
    "REWRITE_KEY",
    "Batching",
    "Caching",
    "ModelSelection",
    "PromptOptimization",
    "RateLimiting",
    "Strategy",
    "StrategyInput",
    "StrategyRunner",
    "build_strategies",
    "coordinate",
    "expected_value",
]


def build_strategies(settings: Settings) -> list[Strategy[Any]]:
    """The five strategies of this release, configured from ``settings``.

    ``decisions.*`` holds their thresholds, ``analyzers.*`` the SLOs they share with the
    analyzers, and ``processor.prices`` the price overrides of the model catalogue.
    """
    d, a = settings.decisions, settings.analyzers
    prices = PriceTable(settings.processor.prices)
    return [
        ModelSelection(d, a, prices),
        Caching(d, a),
        RateLimiting(d, a),
        Batching(d, a),
        PromptOptimization(d, a, prices),
    ]
