"""What the pipeline's metrics read from the database: windows, calls, insights, decisions...

The orchestrator samples these for ``llmopt_pipeline_*`` and ``llmopt_canary_*``
(:mod:`orchestrator.pipeline_metrics`); each mapping is labels → value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select

from storage.models import (
    DecisionRow,
    DeploymentRow,
    InsightRow,
    StrayEventRow,
    VerdictRow,
    WindowRow,
)

__all__ = ["Key", "PipelineCounts", "read_pipeline_counts"]

Key = tuple[str, ...]


@dataclass
class PipelineCounts:
    """Counts and sums over the stored records, by their labels."""

    strays: dict[Key, float] = field(default_factory=dict)  # (kind,)
    windows: dict[Key, float] = field(default_factory=dict)  # (kind,)
    calls: dict[Key, float] = field(default_factory=dict)  # (app, model)
    errors: dict[Key, float] = field(default_factory=dict)  # (app, model)
    cost: dict[Key, float] = field(default_factory=dict)  # (app, model)
    latency: dict[Key, float] = field(default_factory=dict)  # (app, model, percentile), s
    insights: dict[Key, float] = field(default_factory=dict)  # (analyzer, severity)
    decisions: dict[Key, float] = field(default_factory=dict)  # (strategy, status)
    verdicts: dict[Key, float] = field(default_factory=dict)  # (outcome,)
    rollbacks: float = 0.0
    deployments: dict[Key, float] = field(default_factory=dict)  # (status,)
    weights: dict[Key, float] = field(default_factory=dict)  # (app, task)


def read_pipeline_counts(engine: Engine) -> PipelineCounts:
    """The stored part of the pipeline's metrics (cheap aggregate queries)."""
    sample = PipelineCounts()
    w = WindowRow
    with engine.connect() as conn:
        for kind, n in conn.execute(select(w.kind, func.count()).group_by(w.kind)):
            sample.windows[(kind,)] = n
        tumbling = w.kind == "tumbling"
        query = (
            select(w.app, w.model, func.sum(w.count), func.sum(w.error_count), func.sum(w.cost_usd))
            .where(tumbling)
            .group_by(w.app, w.model)
        )
        for app, model, calls, errors, cost in conn.execute(query):
            sample.calls[(app, model)] = float(calls or 0)
            sample.errors[(app, model)] = float(errors or 0)
            sample.cost[(app, model)] = float(cost or 0.0)
        latest = (
            select(w.app, w.model, func.max(w.window_start).label("at"))
            .where(tumbling)
            .group_by(w.app, w.model)
            .subquery()
        )
        percentiles = (
            select(
                w.app, w.model, func.max(w.latency_p50), func.max(w.latency_p95),
                func.max(w.latency_p99),
            )
            .join(latest, (w.app == latest.c.app) & (w.model == latest.c.model))
            .where(tumbling, w.window_start == latest.c.at)
            .group_by(w.app, w.model)
        )  # fmt: skip
        for app, model, p50, p95, p99 in conn.execute(percentiles):
            for name, value in (("p50", p50), ("p95", p95), ("p99", p99)):
                sample.latency[(app, model, name)] = float(value or 0.0) / 1000.0
        for kind, n in conn.execute(
            select(StrayEventRow.kind, func.count()).group_by(StrayEventRow.kind)
        ):
            sample.strays[(kind,)] = n
        i = InsightRow
        for analyzer, severity, n in conn.execute(
            select(i.analyzer, i.severity, func.count()).group_by(i.analyzer, i.severity)
        ):
            sample.insights[(analyzer, severity)] = n
        d = DecisionRow
        for strategy, status, n in conn.execute(
            select(d.strategy, d.status, func.count()).group_by(d.strategy, d.status)
        ):
            sample.decisions[(strategy, status)] = n
        for outcome, n in conn.execute(
            select(VerdictRow.outcome, func.count()).group_by(VerdictRow.outcome)
        ):
            sample.verdicts[(outcome,)] = n
        dep = DeploymentRow
        for status, n in conn.execute(select(dep.status, func.count()).group_by(dep.status)):
            sample.deployments[(status,)] = n
            if status == "rolled_back":
                sample.rollbacks = float(n)
        for app, task, weight in conn.execute(
            select(dep.app, dep.task, dep.weight).where(dep.status.in_(["running", "paused"]))
        ):
            sample.weights[(app, task)] = float(weight)
    return sample
