"""What one simulated task served, against its default model and the oracle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.app_config import TaskConfig

__all__ = ["ConfigChange", "Ledger"]


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """What the task's active config served from ``at`` on (as the app read it)."""

    at: datetime
    model: str  # the baseline side's model ("" : the task's default)
    canary_model: str | None  # the canary side's model (None: no canary)
    canary_weight: float
    shadow_model: str | None


@dataclass(slots=True)
class Ledger:
    """What one task served, against the default model and the oracle (expected values)."""

    calls: int = 0
    canary_calls: int = 0
    errors: int = 0
    billed_usd: float = 0.0  # sampled cost of the calls as sent
    served_usd: float = 0.0  # expected cost of the models that served
    default_usd: float = 0.0  # ... had the default model served every call
    oracle_usd: float = 0.0  # ... had the oracle's model served every call
    served_quality: float = 0.0  # sums of expected quality
    default_quality: float = 0.0
    oracle_quality: float = 0.0
    cache_hits: int = 0  # calls answered by the app's response cache (no model call)
    off_slo_calls: int = 0  # calls served by a model that missed the task's SLOs then
    by_model: dict[str, int] = field(default_factory=dict)
    baseline_model: str = ""  # the model of the baseline side at the last tick
    shadow_calls: int = 0  # shadow evaluations run (not served)
    shadow_usd: float = 0.0  # their expected cost (exploration)
    explore_quality_lost: float = 0.0  # canary calls: expected quality below the baseline's
    explore_usd: float = 0.0  # canary calls: expected cost above the baseline's
    changes: list[ConfigChange] = field(default_factory=list)  # the config as read, on change

    def observe(self, at: datetime, config: TaskConfig) -> None:
        """Record the task's config read at ``at`` when it differs from the last one."""
        canary = config.canary
        canary_model = None
        if canary is not None:
            canary_model = str(canary.overrides.get("model", config.model or ""))
        change = ConfigChange(
            at,
            config.model or "",
            canary_model,
            canary.weight if canary is not None else 0.0,
            config.shadow.model if config.shadow is not None else None,
        )
        last = self.changes[-1] if self.changes else None
        if last is None or (
            last.model,
            last.canary_model,
            last.canary_weight,
            last.shadow_model,
        ) != (
            change.model,
            change.canary_model,
            change.canary_weight,
            change.shadow_model,
        ):
            self.changes.append(change)

    def savings(self) -> float:
        """Share of the default model's cost saved."""
        return 1 - self.served_usd / self.default_usd if self.default_usd else 0.0

    def oracle_savings(self) -> float:
        """Share the oracle would have saved."""
        return 1 - self.oracle_usd / self.default_usd if self.default_usd else 0.0

    def quality_change(self) -> float:
        """Mean expected quality served minus the default model's."""
        return (self.served_quality - self.default_quality) / self.calls if self.calls else 0.0
