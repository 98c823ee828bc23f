"""How much traffic a change under test gets, and how long until its verdict: pure planning.

A fixed ladder cannot serve every task: a quiet task never gathers a stage's samples at 1 %, a
busy one wastes hours at weights it has long outgrown. The weight is planned from the evidence
instead, under a **risk budget**: the quality a task may lose per call while a change is tested
(``canary.risk_budget``). A canary call loses, in expectation, ``E[max(0, -delta)]`` where
``delta`` (canary minus baseline quality) is taken as normal around the estimate with the
estimate's standard error (a planning estimate, not a decision: the decision is the judge's
anytime-valid band), so the canary may take

    weight = risk_budget / E[max(0, -delta)]

of the calls, snapped down to the ladder (``canary.stages``, below 1: promotion replaces the
100 % stage). Before any quality score the first rung holds; evidence that the candidate is
not worse lifts the weight; the weight never falls (consistent hashing: raising it only moves
calls to the canary). Tasks without any quality signal climb one rung per passing stage.

:func:`time_to_verdict` projects when the band will decide, from the information gathered so
far and its rate: a quiet task may need days, and the verdict says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

from operators.sequential import Interval, information_needed, rho_for

__all__ = ["expected_loss", "ladder", "planned_weight", "time_to_verdict"]


def ladder(stages: Sequence[float]) -> tuple[float, ...]:
    """The weights a rollout may take (a trailing 1.0 means promotion, not a stage)."""
    return tuple(w for w in stages if w < 1.0) or (0.5,)


def expected_loss(band: Interval) -> float:
    """``E[max(0, -delta)]`` for ``delta ~ Normal(estimate, 1 / information)``."""
    sd = 1.0 / math.sqrt(band.information)
    z = band.estimate / sd
    return sd * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) - band.estimate * _phi(-z)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def planned_weight(
    rungs: Sequence[float],
    current: float,
    band: Interval | None,
    risk_budget: float,
    *,
    stage_passed: bool,
    harm_checked: bool = True,
) -> float:
    """The weight for the next stage: never below ``current``, always a rung.

    Args:
        rungs: The ladder (increasing, below 1).
        current: The weight now.
        band: The quality band (None: the task has no quality signal at all).
        risk_budget: Quality the task may lose per call while testing.
        stage_passed: Whether the current stage passed (used when there is no quality signal).
        harm_checked: Whether the error and latency tests have had their samples; until they
            have, the weight climbs at most one rung per stage, whatever quality allows (a
            change that breaks latency must not reach half the traffic on its quality alone).
    """
    higher = [w for w in rungs if w > current]
    step = higher[0] if higher else current
    if band is None:
        return step if stage_passed else current
    if not band.known or not math.isfinite(band.estimate):
        return current
    target = risk_budget / max(expected_loss(band), 1e-12)
    fitting = [w for w in rungs if w <= target + 1e-12]
    planned = max(current, fitting[-1] if fitting else rungs[0])
    return planned if harm_checked else min(planned, step)


def time_to_verdict(
    band: Interval, tolerance: float, alpha: float, elapsed: timedelta
) -> timedelta | None:
    """Projected time until the quality band decides, at the information rate seen so far.

    ``None`` when nothing can be projected (no information yet); ``timedelta.max`` when the
    estimate sits on the tolerance itself (no finite amount of data decides it).
    """
    seconds = elapsed.total_seconds()
    if not band.known or seconds <= 0 or not math.isfinite(band.estimate):
        return None
    rate = band.information / seconds
    distance = abs(band.estimate + tolerance)
    rho = rho_for(max(tolerance, 1e-3), alpha)
    needed = information_needed(distance, alpha, rho)
    if not math.isfinite(needed):
        return timedelta.max
    remaining = max(needed - band.information, 0.0) / rate
    if remaining > timedelta.max.total_seconds() / 2:
        return timedelta.max
    return timedelta(seconds=remaining)
