"""What the optimizer did against the ground truth.

Per task: the cost saved against the default model next to what the oracle (the cheapest model
meeting the SLOs, at every moment) would have saved, and the change of expected quality. Per
rollout of a model: was the candidate good (met the SLOs when its canary started) or bad, and
how did it end: a bad one caught (at which weight), missed (promoted), a good one promoted or
wrongly rolled back, a regression after promotion caught by the health watch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import httpx
import msgspec
from sqlalchemy import Engine

from core.decisions import Decision, Deployment
from simulator.fleet import Fleet
from storage.database import session_scope
from storage.decisions import get_deployment, list_decisions, list_deployments

__all__ = [
    "Report",
    "RolloutOutcome",
    "TaskOutcome",
    "build_report",
    "rollouts_from_db",
    "rollouts_from_rest",
]

Verdict = Literal[
    "caught",  # bad candidate rolled back during its canary
    "missed",  # bad candidate promoted
    "promoted",  # good candidate promoted (or still watched)
    "wrongly_rolled_back",  # good candidate rolled back without a regression
    "regression_caught",  # good candidate rolled back after it regressed (incident)
    "open",  # still rolling out
    "other",  # not a model change, or a model the scenario does not know
]


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """One task's cost and quality against the default model and the oracle."""

    app: str
    task: str
    calls: int
    canary_calls: int
    default_model: str
    final_model: str
    oracle_model: str
    savings: float
    oracle_savings: float
    quality_change: float
    oracle_quality_change: float
    off_slo_share: float  # share of calls served by a model missing the SLOs at the time


@dataclass(frozen=True, slots=True)
class RolloutOutcome:
    """One deployment of a decision, judged against the truth."""

    app: str
    task: str
    strategy: str
    model: str | None
    status: str
    weight: float
    stage: int
    started_at: datetime
    finished_at: datetime | None
    reason: str
    good: bool | None  # the candidate met the SLOs when its canary started
    outcome: Verdict
    incident: bool = False  # rolled back while an incident hit the task (any model)


@dataclass(frozen=True, slots=True)
class Report:
    """The simulation's result (see the module docstring)."""

    scenario: str
    start: datetime
    end: datetime
    tasks: list[TaskOutcome]
    rollouts: list[RolloutOutcome]
    decisions: dict[str, int] = field(default_factory=dict)  # "strategy/status" → count
    events: int = 0

    def summary(self) -> dict[str, Any]:
        """The headline numbers."""
        default = sum(t.calls for t in self.tasks) or 1
        saved = sum(t.savings * t.calls for t in self.tasks) / default
        oracle = sum(t.oracle_savings * t.calls for t in self.tasks) / default
        quality = sum(t.quality_change * t.calls for t in self.tasks) / default
        off_slo = sum(t.off_slo_share * t.calls for t in self.tasks) / default
        models = [r for r in self.rollouts if r.outcome != "other"]
        bad = [r for r in models if r.good is False]
        good = [r for r in models if r.good is True]
        caught = [r for r in bad if r.outcome == "caught"]
        wrong = [r for r in good if r.outcome == "wrongly_rolled_back"]
        stages = Counter(f"{r.weight:.0%}" for r in caught)
        return {
            "events": self.events,
            "savings": saved,
            "oracle_savings": oracle,
            "savings_vs_oracle": saved / oracle if oracle > 0 else None,
            "quality_change": quality,
            "off_slo_share": off_slo,
            "model_rollouts": len(models),
            "bad_canaries": len(bad),
            "bad_caught": len(caught),
            "bad_caught_pct": 100 * len(caught) / len(bad) if bad else None,
            "bad_caught_at": dict(sorted(stages.items(), key=lambda kv: float(kv[0][:-1]))),
            "bad_missed": sum(1 for r in bad if r.outcome == "missed"),
            "good_canaries": len(good),
            "good_promoted": sum(1 for r in good if r.outcome == "promoted"),
            "good_wrongly_rolled_back": len(wrong),
            "good_wrongly_rolled_back_pct": 100 * len(wrong) / len(good) if good else None,
            "regressions_caught": sum(1 for r in models if r.outcome == "regression_caught"),
            "open": sum(1 for r in models if r.outcome == "open"),
            "rollbacks_during_incidents": sum(1 for r in self.rollouts if r.incident),
        }

    def render(self) -> str:
        """A plain-text report."""
        s = self.summary()
        lines = [
            f"scenario {self.scenario}: {self.start.isoformat()} → {self.end.isoformat()}, "
            f"{s['events']} events",
            "",
            f"{'app/task':28} {'calls':>8} {'default':>12} {'final':>12} {'oracle':>12} "
            f"{'saved':>7} {'oracle':>7} {'Δquality':>9} {'off-SLO':>8}",
        ]
        for t in self.tasks:
            lines.append(
                f"{t.app + '/' + t.task:28} {t.calls:>8} {t.default_model:>12} "
                f"{t.final_model:>12} {t.oracle_model:>12} {t.savings:>7.1%} "
                f"{t.oracle_savings:>7.1%} {t.quality_change:>+9.4f} {t.off_slo_share:>8.1%}"
            )
        vs = s["savings_vs_oracle"]
        lines += [
            "",
            f"savings {s['savings']:.1%} of the default models' cost; the oracle's "
            f"{s['oracle_savings']:.1%}"
            + (f" ({vs:.0%} of the oracle's)" if vs is not None else "")
            + f"; expected quality change {s['quality_change']:+.4f}; calls served off the "
            f"SLOs {s['off_slo_share']:.1%}",
            f"model rollouts {s['model_rollouts']}: bad {s['bad_canaries']} (caught "
            f"{s['bad_caught']}, at {s['bad_caught_at'] or '-'}; missed {s['bad_missed']}), "
            f"good {s['good_canaries']} (promoted {s['good_promoted']}, wrongly rolled back "
            f"{s['good_wrongly_rolled_back']}), regressions caught after promotion "
            f"{s['regressions_caught']}, open {s['open']}",
        ]
        for r in self.rollouts:
            lines.append(
                f"  {r.started_at:%H:%M} {r.app}/{r.task} {r.strategy} {r.model or '-'}: "
                f"{r.outcome} ({r.status} at {r.weight:.0%})"
                + (" [during an incident]" if r.incident else "")
                + f" {r.reason[:90]}"
            )
        if self.decisions:
            lines.append(
                "decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.decisions.items()))
            )
        return "\n".join(lines)


def _outcome(
    fleet: Fleet, d: Deployment, model: str | None, stages: int
) -> tuple[bool | None, Verdict]:
    if model is None:
        return None, "other"
    good = fleet.is_good(d.app, d.task, model, d.started_at)
    if good is None:
        return None, "other"
    if d.status in ("running", "paused"):
        return good, "open"
    if d.status in ("watching", "promoted"):
        return good, "promoted" if good else "missed"
    if not good:
        return good, "caught"
    at_end = fleet.is_good(d.app, d.task, model, d.finished_at or d.updated_at)
    if at_end is False:
        return good, "regression_caught"
    del stages
    return good, "wrongly_rolled_back"


def build_report(
    fleet: Fleet,
    end: datetime,
    rollouts: Iterable[tuple[Deployment, Decision]],
    decisions: Sequence[Decision] = (),
    *,
    stages: int = 5,
    events: int = 0,
) -> Report:
    """The report of ``fleet``'s run up to ``end`` given what the optimizer did."""
    tasks: list[TaskOutcome] = []
    for t in fleet.scenario.tasks:
        ledger = fleet.ledgers[(t.app, t.task)]
        tasks.append(
            TaskOutcome(
                app=t.app,
                task=t.task,
                calls=ledger.calls,
                canary_calls=ledger.canary_calls,
                default_model=t.model,
                final_model=ledger.baseline_model or t.model,
                oracle_model=fleet.oracle(t, end),
                savings=ledger.savings(),
                oracle_savings=ledger.oracle_savings(),
                quality_change=ledger.quality_change(),
                oracle_quality_change=(ledger.oracle_quality - ledger.default_quality)
                / ledger.calls
                if ledger.calls
                else 0.0,
                off_slo_share=ledger.off_slo_calls / ledger.calls if ledger.calls else 0.0,
            )
        )
    out: list[RolloutOutcome] = []
    for d, decision in sorted(rollouts, key=lambda dd: dd[0].started_at):
        model = decision.action.get("model") if decision.strategy == "model_selection" else None
        good, outcome = _outcome(fleet, d, model, stages)
        out.append(
            RolloutOutcome(
                app=d.app,
                task=d.task,
                strategy=decision.strategy,
                model=model,
                status=d.status,
                weight=d.weight,
                stage=d.stage,
                started_at=d.started_at,
                finished_at=d.finished_at,
                reason=d.reason,
                good=good,
                outcome=outcome,
                incident=d.status == "rolled_back"
                and fleet.incident_active(d.app, d.task, d.finished_at or d.updated_at),
            )
        )
    counts = Counter(f"{d.strategy}/{d.status}" for d in decisions)
    return Report(fleet.scenario.name, fleet.start, end, tasks, out, dict(counts), events)


def rollouts_from_db(
    engine: Engine, apps: Sequence[str]
) -> tuple[list[tuple[Deployment, Decision]], list[Decision]]:
    """Every deployment of ``apps`` with its decision, and every decision, from the database."""
    pairs: list[tuple[Deployment, Decision]] = []
    decisions: list[Decision] = []
    with session_scope(engine) as session:
        for app in apps:
            found = list_decisions(session, app=app, limit=100_000).items
            decisions += found
            by_id = {d.id: d for d in found}
            deployments, _ = list_deployments(session, app=app, limit=100_000)
            for dep in deployments:
                full = get_deployment(session, dep.id)
                if dep.decision_id in by_id:
                    pairs.append((full, by_id[dep.decision_id]))
    return pairs, decisions


def _pages(client: httpx.Client, path: str, params: dict[str, Any]) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 500} | ({"cursor": cursor} if cursor else {})
        response = client.get(path, params=query)
        response.raise_for_status()
        page = response.json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def rollouts_from_rest(
    client: httpx.Client, apps: Sequence[str]
) -> tuple[list[tuple[Deployment, Decision]], list[Decision]]:
    """The same from the REST API (``/api/v1/deployments``, ``/api/v1/optimize``)."""
    pairs: list[tuple[Deployment, Decision]] = []
    decisions: list[Decision] = []
    for app in apps:
        found = [
            msgspec.convert(d, Decision)
            for d in _pages(client, "/api/v1/optimize/recommendations", {"app": app})
        ]
        decisions += found
        by_id = {d.id: d for d in found}
        for raw in _pages(client, "/api/v1/deployments", {"app": app}):
            dep = msgspec.convert(raw, Deployment)
            if dep.decision_id in by_id:
                pairs.append((dep, by_id[dep.decision_id]))
    return pairs, decisions
