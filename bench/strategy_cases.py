"""Good and bad cases of caching, rate limiting, batching and prompt changes, run to a verdict.

Each case is one app/task whose truth makes exactly one strategy's change pay (good: it must be
promoted) or hurt (bad: it must not be proposed, or be rolled back). The cases are drawn from
seeded distributions defined here (never from eval files):

- **caching**: 40-70 % of calls repeat one of 20-60 prompts. Good: the answers never change.
  Bad: each prompt's correct answer changes every 20-90 s, so cached answers go stale.
- **rate_limiting**: the provider throttles (429) beyond its rate, which the operator knows
  (``decisions.provider_limits``). Good: 11-14 calls/s in clumps of 5-6 (fan-out) at 56-62 % of
  the provider's rate: 1-3 % of calls get a 429 in bursts that a client queue absorbs within the
  judge's latency margin. (In this world the queue's latency cost is ~3x the 429 share it
  removes: from ~3 % of 429s on, a limit costs more than the 10 % margin and is not good.)
  Bad: the task's sustained rate is 25-65 % above the provider's: any limit that stops the 429s
  starves it.
- **batching**: 30-50 small calls/s (40-80 output tokens). Good: the provider takes 20-50 % off a
  batched call and a batch is hardly slower. Bad: each extra call slows the batched request by
  15-30 % (no discount to speak of): latency grows beyond the judge's margin.
- **prompt_optimization**: the fixed prompt (1,500-3,000 tokens) dominates the cost. Good: the
  provider's prompt cache (gpt-4o reads cached tokens at half price). Bad: the prompt is cached
  already, so the strategy asks for a trimmed template (``decisions.prompt_rewrite``; the bench
  plays the integrations service and serves a 40 % shorter one) that costs 0.05-0.12 quality.

The fleet (:mod:`simulator`) serves the task with the active config and its canary; telemetry goes
period by period through the real operators and actuator (:class:`simulator.InProcessOptimizer`).
Savings are the billed cost against the same scenario served without the change; the best
possible is the change applied from the start (good cases) or no change (bad cases).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine

from core.app_config import AppConfig, PromptConfig, TaskConfig, apply_overrides
from core.decisions import Decision, Deployment
from core.settings import ProviderLimit, Settings, updated
from operators.strategies.prices import provider_of
from rollout.config_manager import ConfigManager
from rollout.prompt_rewrite import apply_rewrite, pending_rewrites
from simulator import (
    CallbackSink,
    Fleet,
    InProcessOptimizer,
    ManagerConfigSource,
    ModelProfile,
    Scenario,
    Simulation,
    StaticConfigSource,
    TaskProfile,
)
from storage.database import session_scope
from storage.decisions import get_deployment, list_decisions, list_deployments

__all__ = [
    "STRATEGY_NAMES",
    "CaseResult",
    "StrategyCase",
    "case_settings",
    "run_strategy_case",
    "strategy_cases",
]

BIG = "gpt-4o"
START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
STRATEGY_NAMES = ("caching", "rate_limiting", "batching", "prompt_optimization")
TEMPLATE = "You answer questions about the catalogue. {context} Rules: " + "be exact. " * 60
_DONE = ("promoted", "rolled_back")


@dataclass(frozen=True)
class StrategyCase:
    """One case's truth: the task, its starting config and the change that pays (if any)."""

    index: int
    strategy: str
    good: bool
    kind: str
    task: TaskProfile
    start: TaskConfig
    change: dict[str, Any]  # the overrides the good case should end on (the best possible)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _case(index: int, strategy: str, good: bool, rng: np.random.Generator) -> StrategyCase:
    app = f"{strategy.replace('_', '-')}-{index}"
    task: dict[str, Any] = {"app": app, "task": "answer", "model": BIG}
    model = ModelProfile()
    start = TaskConfig(model=BIG)
    change: dict[str, Any]
    if strategy == "caching":
        task |= {
            "rate_per_s": _u(rng, 15, 30),
            "repeat_ratio": _u(rng, 0.4, 0.7),
            "distinct_prompts": int(rng.integers(20, 61)),
        }
        if not good:
            task["answer_lifetime_s"] = _u(rng, 20, 90)
        kind, change = ("stable answers", {"cache": {"ttl_s": 300.0}})
        kind = kind if good else "answers drift"
    elif strategy == "rate_limiting":
        rate = _u(rng, 11, 14)
        if good:
            model = dataclasses.replace(model, provider_rps=rate / _u(rng, 0.56, 0.62))
            task |= {"rate_per_s": rate, "clump_size": int(rng.integers(5, 7))}
            kind, change = "bursts", {"rate_limit": {"requests_per_s": rate * 1.2, "burst": 20}}
        else:
            model = dataclasses.replace(
                model, provider_rps=rate / _u(rng, 1.25, 1.65)
            )  # > its rate
            task |= {"rate_per_s": rate}
            kind, change = "sustained overload", {}
    elif strategy == "batching":
        model = dataclasses.replace(
            model,
            output_tokens=_u(rng, 40, 80),
            batch_discount=_u(rng, 0.2, 0.5) if good else _u(rng, 0.0, 0.05),
            batch_item_latency=_u(rng, 0.0, 0.01) if good else _u(rng, 0.15, 0.3),
        )
        task |= {"rate_per_s": _u(rng, 30, 50)}
        kind = "discounted batches" if good else "slow batches"
        change = {"batching": {"max_batch_size": 8, "max_wait_ms": 50.0}}
    else:
        model = dataclasses.replace(model, input_tokens=_u(rng, 200, 400))
        task |= {
            "rate_per_s": _u(rng, 15, 30),
            "prompt_tokens_fixed": int(rng.integers(1500, 3001)),
        }
        task |= {"template": TEMPLATE}
        if good:
            start = TaskConfig(model=BIG, prompt=PromptConfig(template=TEMPLATE))
            kind, change = (
                "prompt caching",
                {"prompt": {"prompt_cache": True, "template": TEMPLATE}},
            )
        else:
            task["trimmed_quality_delta"] = -_u(rng, 0.05, 0.12)
            start = TaskConfig(model=BIG, prompt=PromptConfig(template=TEMPLATE, prompt_cache=True))
            kind, change = "trim costs quality", {}
    profile = TaskProfile(models={BIG: model}, **task)
    return StrategyCase(index, strategy, good, kind, profile, start, change)


def strategy_cases(
    per_side: int, seed: int, strategies: tuple[str, ...] = STRATEGY_NAMES
) -> list[StrategyCase]:
    """``per_side`` good and ``per_side`` bad cases of each of ``strategies``."""
    rng = np.random.default_rng(seed)
    out: list[StrategyCase] = []
    for strategy in strategies:
        for _ in range(per_side):
            for good in (True, False):
                out.append(_case(len(out), strategy, good, rng))
    return out


def case_settings(base: Settings, case: StrategyCase) -> Settings:
    """``base`` for ``case``: no model candidates, prompt rewrites on (a key the bench never
    uses) and, as an operator who knows the account's quota sets it, the provider's rate in
    ``decisions.provider_limits``."""
    limits = dict(base.decisions.provider_limits)
    known = case.task.models[case.task.model].provider_rps
    if known is not None:
        limits[provider_of(case.task.model) or ""] = ProviderLimit(requests_per_s=known)
    return base.with_overrides(
        decisions=dataclasses.replace(
            base.decisions,
            candidates=(),
            app_candidates={},
            prompt_rewrite=True,
            provider_limits=limits,
        ),
        integrations=updated(base.integrations, anthropic__api_key="simulated"),
    )


@dataclass(frozen=True)
class CaseResult:
    """How one case ended."""

    case: StrategyCase
    proposed: int  # decisions of the case's strategy
    deployment: Deployment | None  # its (last) deployment
    decision: Decision | None
    savings: float  # billed cost saved against no change
    best: float  # ... by the best possible (the change from the start, or no change)
    minutes: float  # simulated minutes until the verdict (or the end)
    events: int

    @property
    def status(self) -> str:
        """``promoted``, ``rolled_back``, ``open``, or ``not proposed`` / ``not started``."""
        if self.deployment is not None:
            return self.deployment.status
        return "not started" if self.proposed else "not proposed"

    @property
    def right(self) -> bool:
        """Good promoted, bad stopped (never proposed, never started, or rolled back)."""
        if self.case.good:
            return self.status == "promoted"
        return self.status in ("rolled_back", "not proposed", "not started")

    @property
    def failed_metrics(self) -> tuple[str, ...]:
        """The metrics the last verdict failed on."""
        if self.deployment is None or not self.deployment.verdicts:
            return ()
        last = self.deployment.verdicts[-1]
        return tuple(c.metric for c in last.checks if c.passed is False)


def _billed(case: StrategyCase, overrides: dict[str, Any], minutes: float) -> float:
    """What the scenario bills served with the start config plus ``overrides`` throughout."""
    scenario = Scenario(f"case-{case.index}", (case.task,), seed=case.index)
    fleet = Fleet(scenario, start=START)
    config = apply_overrides(case.start, overrides) if overrides else case.start
    source = StaticConfigSource(
        {case.task.app: AppConfig(app=case.task.app, version=1, tasks={case.task.task: config})}
    )
    sim = Simulation(fleet, source, CallbackSink(lambda _: None))
    sim.run_until(START + timedelta(minutes=minutes))
    return fleet.ledgers[(case.task.app, case.task.task)].billed_usd


def _rewrite(engine: Engine, settings: Settings, now: datetime) -> None:
    """Play the integrations service: give each pending rewrite a 40 % shorter template."""
    with session_scope(engine) as session:
        for decision in pending_rewrites(session):
            prompt = decision.action.get("prompt") or {}
            template = str(prompt.get("template") or TEMPLATE)
            shorter = template[: int(len(template) * 0.6)]
            apply_rewrite(
                session, decision, template=template, rewritten=shorter,
                cost={"simulated": True}, settings=settings.canary, now=now,
            )  # fmt: skip


def run_strategy_case(
    case: StrategyCase,
    settings: Settings,
    engine: Engine,
    *,
    max_minutes: float,
    on_minute: Callable[[datetime], None] | None = None,
    savings: bool = True,
) -> CaseResult:
    """Run ``case`` through the optimizer on ``engine`` (migrated) until its verdict.

    Stops when a deployment of the case's strategy is promoted or rolled back, or after
    ``max_minutes`` of simulated time. ``savings``: also serve the scenario without the change
    and with it from the start (the counterfactuals of the savings; 0 when skipped).
    """
    app, name = case.task.app, case.task.task
    scenario = Scenario(f"case-{case.index}", (case.task,), seed=case.index)
    fleet = Fleet(scenario, start=START)
    clock = {"now": START}
    manager = ConfigManager(engine, clock=lambda: clock["now"])
    source = ManagerConfigSource(manager)
    source.seed(app, {name: case.start})
    optimizer = InProcessOptimizer(settings, engine)
    sim = Simulation(fleet, source, CallbackSink(optimizer.feed))
    last = {"at": START}

    def finished(now: datetime) -> bool:
        clock["now"] = now
        if now - last["at"] < timedelta(minutes=1):
            return False
        last["at"] = now
        _rewrite(engine, settings, now)
        if on_minute is not None:
            on_minute(now)
        return _verdict(engine, case) is not None

    sim.run_until(START + timedelta(minutes=max_minutes), stop=finished)
    optimizer.finish()
    with session_scope(engine) as session:
        decisions = list_decisions(session, app=app, strategy=case.strategy, limit=1000).items
    deployment = _latest(engine, case)
    decision = next((d for d in decisions if deployment and d.id == deployment.decision_id), None)
    minutes = (sim.now - START).total_seconds() / 60
    billed = fleet.ledgers[(app, name)].billed_usd
    none = _billed(case, {}, minutes) if savings else 0.0
    best = _billed(case, case.change, minutes) if case.good and savings else none
    return CaseResult(
        case, len(decisions), deployment, decision,
        1 - billed / none if none else 0.0, 1 - best / none if none else 0.0, minutes, sim.events,
    )  # fmt: skip


def _latest(engine: Engine, case: StrategyCase) -> Deployment | None:
    with session_scope(engine) as session:
        found, _ = list_deployments(session, app=case.task.app, limit=100)
        ids = {
            d.id
            for d in list_decisions(
                session, app=case.task.app, strategy=case.strategy, limit=1000
            ).items
        }
        mine = [d for d in found if d.decision_id in ids]
        if not mine:
            return None
        return get_deployment(session, max(mine, key=lambda d: d.started_at).id)


def _verdict(engine: Engine, case: StrategyCase) -> Deployment | None:
    found = _latest(engine, case)
    return found if found is not None and found.status in _DONE else None
