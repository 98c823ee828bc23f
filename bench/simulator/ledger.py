"""What one simulated task served, against its default model and the oracle."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Ledger"]


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

    def savings(self) -> float:
        """Share of the default model's cost saved."""
        return 1 - self.served_usd / self.default_usd if self.default_usd else 0.0

    def oracle_savings(self) -> float:
        """Share the oracle would have saved."""
        return 1 - self.oracle_usd / self.default_usd if self.default_usd else 0.0

    def quality_change(self) -> float:
        """Mean expected quality served minus the default model's."""
        return (self.served_quality - self.default_quality) / self.calls if self.calls else 0.0
