"""Built-in scenarios of ``llmopt simulate --scenario NAME``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from simulator.binary_fleet import binary_fleet
from simulator.profiles import Burst, Incident, ModelProfile, Scenario, TaskProfile

__all__ = ["SCENARIOS", "cheaper_good", "cheaper_worse", "fleet", "latency_regression"]

BIG, SMALL = "gpt-4o", "gpt-4o-mini"


def _pair(small: ModelProfile, rate: float = 30.0, **task: Any) -> TaskProfile:
    return TaskProfile(
        app=task.pop("app", "shop"),
        task=task.pop("task", "classify"),
        model=BIG,
        models={BIG: ModelProfile(), SMALL: small},
        rate_per_s=rate,
        **task,
    )


def cheaper_good() -> Scenario:
    """One task whose cheaper candidate is as good as the incumbent."""
    return Scenario("cheaper-good", (_pair(ModelProfile(latency_median_ms=450.0)),))


def cheaper_worse() -> Scenario:
    """One task whose cheaper candidate loses 0.1 of quality."""
    return Scenario("cheaper-worse", (_pair(ModelProfile(quality_mean=0.75)),))


def latency_regression() -> Scenario:
    """A good cheaper candidate whose latency triples 40 minutes in (after its promotion)."""
    base = cheaper_good()
    incident = Incident(model=SMALL, at=timedelta(minutes=40), latency_factor=3.0)
    return replace(base, name="latency-regression", incidents=(incident,))


def fleet() -> Scenario:
    """Three apps, daily cycles, a burst, repeated prompts, one good and one bad candidate."""
    good = ModelProfile(quality_mean=0.84, latency_median_ms=450.0)
    bad = ModelProfile(quality_mean=0.74, quality_sd=0.1, latency_median_ms=400.0)
    return Scenario(
        "fleet",
        (
            _pair(
                good,
                rate=25.0,
                app="support",
                task="classify",
                daily_amplitude=0.4,
                feedback_share=0.5,
            ),
            _pair(
                bad,
                rate=15.0,
                app="support",
                task="summarize",
                bursts=(Burst(timedelta(minutes=30), timedelta(minutes=5), 3.0),),
            ),
            _pair(good, rate=10.0, app="search", task="rerank", repeat_ratio=0.4),
        ),
        incidents=(Incident(model=SMALL, at=timedelta(hours=3), latency_factor=2.5),),
        duration=timedelta(hours=4),
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "cheaper-good": cheaper_good,
    "cheaper-worse": cheaper_worse,
    "latency-regression": latency_regression,
    "fleet": fleet,
    "binary-fleet": binary_fleet,
}
