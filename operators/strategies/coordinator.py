"""The coordinator: of one period's proposals for one (app, task), at most one goes ahead.

Rules, in order; every proposal that does not go ahead gets a reason:

1. **One in-flight change per (app, task)**: while a canary or change is in flight, nothing.
2. **Cooldown**: nothing within ``decisions.cooldown`` of the last decision of the (app, task).
3. **Minimum confidence** ``decisions.min_confidence``.
4. **Safety limits**: expected cost change at most ``max_cost_increase_pct``, latency change at
   most ``max_latency_increase_pct``, expected quality (``baseline_quality_mean`` of the
   evidence plus the quality change) at least ``min_quality``.
5. **Model switch and prompt change never together**: a proposal whose action changes both is
   rejected; once a model switch is chosen the prompt change waits, and the other way round.
6. **Best expected value**: ``confidence · (-weight_cost · cost% - weight_latency · latency% +
   weight_quality · quality change / quality_tolerance · 100)``; ties go to the strategy order
   of :data:`core.decisions.STRATEGIES`, then the id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.decisions import STRATEGIES, Decision
from core.settings import DecisionSettings

__all__ = ["coordinate", "expected_value", "restores_latency_slo"]

_PCT = 100.0
_NOT_TOGETHER = "a model switch and a prompt change never go together"
_CONFLICTING = frozenset({"model_selection", "prompt_optimization"})


def expected_value(decision: Decision, settings: DecisionSettings) -> float:
    """Confidence times the weighted benefit (percent; quality counted in tolerances)."""
    i, s = decision.expected_impact, settings
    quality = i.quality_change / s.quality_tolerance * _PCT if s.quality_tolerance > 0 else 0.0
    benefit = (
        -s.weight_cost * i.cost_change_pct
        - s.weight_latency * i.latency_change_pct
        + s.weight_quality * quality
    )
    return decision.confidence * benefit


def restores_latency_slo(d: Decision) -> bool:
    """The strategy found that the incumbent breaks the latency SLO and this change meets it.

    Such a change may cost more than ``decisions.max_cost_increase_pct``: meeting the SLO comes
    first (a promoted model that regressed must be able to go back to a dearer one).
    """
    return d.evidence.get("restores_latency_slo") is True


def _unsafe(d: Decision, s: DecisionSettings) -> str | None:
    i = d.expected_impact
    if d.confidence < s.min_confidence:
        return f"confidence {d.confidence:.2f} below decisions.min_confidence {s.min_confidence}"
    if i.cost_change_pct > s.max_cost_increase_pct and not restores_latency_slo(d):
        return (
            f"expected cost change {i.cost_change_pct:+.1f} % exceeds "
            f"decisions.max_cost_increase_pct {s.max_cost_increase_pct}"
        )
    if i.latency_change_pct > s.max_latency_increase_pct:
        return (
            f"expected latency change {i.latency_change_pct:+.1f} % exceeds "
            f"decisions.max_latency_increase_pct {s.max_latency_increase_pct}"
        )
    base = d.evidence.get("baseline_quality_mean")
    if s.min_quality > 0 and isinstance(base, int | float):
        expected = base + i.quality_change
        if expected < s.min_quality:
            return f"expected quality {expected:.3f} below decisions.min_quality {s.min_quality}"
    if {"model", "prompt"} <= d.action.keys():
        return _NOT_TOGETHER
    return None


def coordinate(
    proposals: Sequence[Decision],
    *,
    in_flight: bool,
    last_decision_at: datetime | None,
    now: datetime,
    settings: DecisionSettings,
) -> tuple[Decision | None, list[tuple[Decision, str]]]:
    """Choose at most one of ``proposals`` (all of one app and task).

    Args:
        proposals: This period's proposals of one (app, task).
        in_flight: Whether a change of the (app, task) is still rolling out.
        last_decision_at: When the last decision of the (app, task) went ahead, if ever.
        now: The current time (the period's end in the dataflow), aware.
        settings: ``decisions.*``.

    Returns:
        The chosen decision (or ``None``) and every other proposal with its reason.

    Raises:
        ValueError: When the proposals are of more than one (app, task).
    """
    if len({(p.app, p.task) for p in proposals}) > 1:
        raise ValueError("coordinate() takes the proposals of one (app, task)")
    if in_flight:
        return None, [(p, "a change of this (app, task) is in flight") for p in proposals]
    if last_decision_at is not None and now - last_decision_at < settings.cooldown:
        left = settings.cooldown - (now - last_decision_at)
        reason = f"cooldown: {left.total_seconds():.0f} s left of decisions.cooldown"
        return None, [(p, reason) for p in proposals]
    rejected: list[tuple[Decision, str]] = []
    safe: list[Decision] = []
    for p in proposals:
        why = _unsafe(p, settings)
        if why is None:
            safe.append(p)
        else:
            rejected.append((p, why))
    order = {name: i for i, name in enumerate(STRATEGIES)}
    ranked = sorted(
        safe, key=lambda p: (-expected_value(p, settings), order.get(p.strategy, 0), p.id)
    )
    if not ranked:
        return None, rejected
    chosen = ranked[0]
    best = expected_value(chosen, settings)
    for p in ranked[1:]:
        if {p.strategy, chosen.strategy} == _CONFLICTING:
            why = f"{chosen.strategy} was chosen: {_NOT_TOGETHER}"
        else:
            why = (
                f"expected value {expected_value(p, settings):.2f} below {best:.2f} of the "
                f"chosen {chosen.strategy} ({chosen.id}); one change at a time"
            )
        rejected.append((p, why))
    return chosen, rejected
