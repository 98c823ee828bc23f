"""A seeded fleet of binary-quality tasks: one app, an expensive model and a cheap candidate.

Every distribution is ours (no public per-prompt evaluation data); ``binary_fleet(seed=s)``
returns the same fleet for the same seed. Per task ``i`` (``app="fleet"``, ``task="t00"``...):

- **accuracy gap** ``g = acc(gpt-4o-mini) - acc(gpt-4o)`` from a mixture: 20 % near ties
  ``U(-0.02, 0.02)``; 60 % moderate, ``|g| ~ U(0.02, 0.2)``; 20 % large, ``|g| ~ U(0.2, 0.3)``;
  the cheap model is the worse one with probability 0.75 in the last two. So ``g`` spans
  ``[-0.3, 0.3]``, ~80 % of tasks within 0.02-0.2 of magnitude or closer, and about 40 % of
  the tasks have the cheap model within the 0.02 tolerance (the oracle switches those).
- **expensive model's accuracy** ``acc(gpt-4o) ~ U(0.5, min(0.95, 0.98 - g))``, so the cheap
  model's ``acc + g`` stays within [0.2, 0.98] and the gap is exact.
- **difficulty loading** ``rho ~ U(0.5, 0.9)`` (:mod:`simulator.binary`: latent
  correlation ``rho**2``, 0.25-0.81).
- **traffic** log-uniform over 0.2-5 calls/s (mean ~1.5), no daily cycle.
- **feedback coverage** (share of calls scored) ``U(0.3, 1.0)``.
- **feedback delay**: 30 % of the tasks score inline (``quality`` on the call); the others send
  every score as a ``feedback`` event ``U(1 s, D)`` after the call, ``D`` log-uniform over
  10 s-8 min (within the default 10-minute feedback join window).
- both models: lognormal latency (gpt-4o median 500 ms, gpt-4o-mini 400 ms, sigma 0.3: both
  meet the 1 s p95 SLO), 0.5 % errors, 800 input and 200 output tokens per call; by the price
  table gpt-4o-mini costs 1/16.7 of gpt-4o per call.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from simulator.profiles import ModelProfile, Scenario, TaskProfile

__all__ = ["BIG", "SMALL", "binary_fleet", "draw_gap"]

BIG, SMALL = "gpt-4o", "gpt-4o-mini"
APP = "fleet"
_TIE, _LARGE = 0.20, 0.20  # mixture weights of near ties and large gaps (moderate: the rest)
_WORSE = 0.75  # chance the cheap model is the worse one, outside ties


def draw_gap(rng: np.random.Generator) -> float:
    """One task's ``acc(cheap) - acc(expensive)`` from the mixture of the module docstring."""
    kind = rng.random()
    if kind < _TIE:
        return float(rng.uniform(-0.02, 0.02))
    size = float(rng.uniform(0.2, 0.3) if kind >= 1 - _LARGE else rng.uniform(0.02, 0.2))
    return -size if rng.random() < _WORSE else size


def binary_fleet(
    tasks: int = 57,
    seed: int = 15,
    *,
    hours: float = 24.0,
    tolerance: float = 0.02,
) -> Scenario:
    """The fleet of the module docstring: ``tasks`` binary-quality tasks of one app.

    Args:
        tasks: How many tasks.
        seed: Seeds both the fleet's truth and (as the scenario's seed) its traffic.
        hours: The scenario's duration.
        tolerance: Every task's quality tolerance (the oracle's and the SLO's).
    """
    rng = np.random.default_rng(seed)
    out: list[TaskProfile] = []
    for i in range(tasks):
        gap = draw_gap(rng)
        acc_big = float(rng.uniform(0.5, min(0.95, 0.98 - gap)))
        rho = float(rng.uniform(0.5, 0.9))
        rate = float(np.exp(rng.uniform(np.log(0.2), np.log(5.0))))
        coverage = float(rng.uniform(0.3, 1.0))
        inline = rng.random() < 0.3
        delay = float(np.exp(rng.uniform(np.log(10.0), np.log(480.0))))
        models = {
            BIG: ModelProfile(quality_mean=acc_big, quality_sd=0.0, latency_median_ms=500.0),
            SMALL: ModelProfile(
                quality_mean=acc_big + gap, quality_sd=0.0, latency_median_ms=400.0
            ),
        }
        out.append(
            TaskProfile(
                app=APP,
                task=f"t{i:02d}",
                model=BIG,
                models=models,
                rate_per_s=rate,
                quality_share=coverage,
                feedback_share=0.0 if inline else 1.0,
                feedback_delay_s=delay,
                binary_quality=True,
                difficulty_rho=rho,
                quality_tolerance=tolerance,
            )
        )
    return Scenario(
        f"binary-fleet-{tasks}-seed{seed}",
        tuple(out),
        duration=timedelta(hours=hours),
        seed=seed,
    )
