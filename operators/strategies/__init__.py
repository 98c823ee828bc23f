"""The decision strategies: plain typed modules, one per change, run per app by ``StrategyRunner``.

Each proposes at most one :class:`core.decisions.Decision` per (app, task) and period; the
actuator passes the proposals of an (app, task) through :func:`coordinate`.
"""

from __future__ import annotations

from operators.strategies.base import Strategy, StrategyInput
from operators.strategies.batching import Batching
from operators.strategies.caching import Caching
from operators.strategies.coordinator import coordinate, expected_value
from operators.strategies.model_selection import ModelSelection
from operators.strategies.prompt_optimization import REWRITE_KEY, PromptOptimization
from operators.strategies.rate_limiting import RateLimiting
from operators.strategies.registry import STRATEGY_ENTRIES, build_strategies
from operators.strategies.runner import StrategyRunner

__all__ = [
    "REWRITE_KEY",
    "STRATEGY_ENTRIES",
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
