"""The simulated fleet of the strategies' closed loop, and the rate its verdicts hold.

One app per case, each with one task on ``gpt-4o-mini`` (no other model: model selection has
nothing to try), drawn from distributions defined here: apps whose change pays, apps whose
change hurts the metric it can hurt, and a look-alike where no strategy may propose anything.
``tests/e2e/test_strategies_closed_loop.py`` runs it on the real stack with one seed;

    .venv/bin/python -m tests.e2e.strategy_fleet --seeds 20

runs it in-process (the same operators and actuator on SQLite, :class:`InProcessOptimizer`)
over many seeds and prints how often each app ends as its case says: the rate at which the
end-to-end test's expectations hold for a seed other than its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.settings import CanarySettings, ProviderLimit, Settings
from rollout.config_manager import ConfigManager
from simulator import (
    CallbackSink,
    Fleet,
    InProcessOptimizer,
    ManagerConfigSource,
    ModelProfile,
    Scenario,
    Simulation,
    TaskProfile,
)
from storage.database import create_db_engine, migrate, session_scope
from storage.decisions import list_decisions, list_deployments

__all__ = ["APPS", "CASES", "DONE", "LOOK_ALIKE", "MINI", "TASK", "Case", "fleet_settings",
           "strategy_fleet"]  # fmt: skip

MINI = "gpt-4o-mini"
TASK = "answer"
DONE = ("promoted", "rolled_back")


HAIKU = "claude-3-5-haiku-latest"  # the fan-out app's provider, whose quota the operator knows
HAIKU_RPS = 21.0


def _task(app: str, model: str = MINI, **truth: Any) -> TaskProfile:
    profile = {k: truth.pop(k) for k in list(truth) if k in ModelProfile.__slots__}
    return TaskProfile(
        app=app, task=TASK, model=model, models={model: ModelProfile(**profile)},
        quality_share=0.5, **truth,
    )  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One app: the strategy that must propose for it, and the verdict its truth calls for."""

    strategy: str
    verdict: str  # promoted, rolled_back, or stopped: never promoted (rolled back or still judged)
    task: TaskProfile
    because: str = ""  # a rollback's reason names this metric

    def ends(self, status: str) -> bool:
        """Whether a decision of this case in ``status`` is the end its truth calls for."""
        if self.verdict == "stopped":
            return status in ("canary", "rolled_back")
        return status == self.verdict

    @property
    def settles(self) -> bool:
        """Whether the run waits for this case's rollout to end."""
        return self.verdict != "stopped"


CASES = {
    # pays: half the calls repeat one of 40 prompts whose answers never change
    "faq": Case("caching", "promoted", _task("faq", rate_per_s=12.0, repeat_ratio=0.5,
                                             distinct_prompts=40)),
    # costs quality: the same repeats, but each answer changes every 40 s (TTL ~100 s: stale)
    "news": Case("caching", "rolled_back", _task("news", rate_per_s=12.0, repeat_ratio=0.5,
                                                 distinct_prompts=40, answer_lifetime_s=40.0),
                 because="quality"),
    # pays: a 2,400-token template on 300 tokens, half price from the provider's prompt cache
    "support": Case("prompt_optimization", "promoted",
                    _task("support", rate_per_s=12.0, prompt_tokens_fixed=2400,
                          input_tokens=300.0)),
    # pays: many small calls, batches at half price, the wait within the latency tolerance
    "tagger": Case("batching", "promoted",
                   _task("tagger", rate_per_s=45.0, latency_median_ms=600.0,
                         latency_sigma=0.25, input_tokens=120.0, output_tokens=20.0,
                         batch_discount=0.5, batch_item_latency=0.02)),
    # pays: 12.5 calls/s in fan-out clumps of 5 that a 21/s provider (its quota known to the
    # optimizer) answers with a few 429s; a client limit at that rate queues the clumps instead
    "fanout": Case("rate_limiting", "promoted",
                   _task("fanout", HAIKU, rate_per_s=12.5, clump_size=5,
                         provider_rps=HAIKU_RPS)),
    # costs latency: bursts above a 5/s provider whose rate the optimizer is not told; a limit
    # one step above the 4/s demand still meets 429s and queues the calls: never promoted (how
    # soon the judge shows the harm varies with the draws)
    "crawler": Case("rate_limiting", "stopped",
                    _task("crawler", rate_per_s=4.0, provider_rps=5.0), because="latency"),
}  # fmt: skip
# A look-alike of every case that must stay as it is: rare repeats, no 429s (timeouts only), a
# p95 near the SLO, a small fixed prompt.
LOOK_ALIKE = _task(
    "essays", rate_per_s=12.0, repeat_ratio=0.05, prompt_tokens_fixed=150,
    latency_median_ms=640.0, latency_sigma=0.25, error_types={"timeout": 1.0},
)  # fmt: skip
APPS = (*CASES, LOOK_ALIKE.app)


def strategy_fleet(seed: int) -> Scenario:
    """Every case's app and the look-alike, two simulated hours at most."""
    tasks = (*(case.task for case in CASES.values()), LOOK_ALIKE)
    return Scenario("strategies", tasks, duration=timedelta(hours=2), seed=seed)


def fleet_settings(base: Settings) -> Settings:
    """``base`` with short canary stages, no candidate models and the fan-out app's quota."""
    return base.with_overrides(
        canary=dataclasses.replace(
            CanarySettings(), stages=(0.1, 0.25, 0.5), min_stage_duration=timedelta(minutes=2),
            post_promotion_watch=timedelta(minutes=2), shadow_share=0.0,
        ),
        decisions=dataclasses.replace(
            base.decisions, candidates=(),
            provider_limits={"anthropic": ProviderLimit(requests_per_s=HAIKU_RPS)},
        ),
    )  # fmt: skip


def verdicts(seed: int, tmp: Path, limit: timedelta = timedelta(minutes=50)) -> dict[str, str]:
    """Each app's end in-process with ``seed``: its decisions' strategy and status, or none."""
    engine = create_db_engine(f"sqlite:///{tmp / f'fleet-{seed}.sqlite3'}")
    migrate(engine)
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    clock = {"now": start}
    optimizer = InProcessOptimizer(fleet_settings(Settings()), engine)
    fleet = Fleet(strategy_fleet(seed), start=start)
    manager = ConfigManager(engine, clock=lambda: clock["now"])
    sim = Simulation(fleet, ManagerConfigSource(manager), CallbackSink(optimizer.feed))
    sim.seed_configs()

    def settled(now: datetime) -> bool:
        clock["now"] = now
        with session_scope(engine) as s:
            found, _ = list_deployments(s, status=list(DONE), limit=100)
        return {d.app for d in found} >= {app for app, c in CASES.items() if c.settles}

    sim.run_until(start + limit, stop=settled)
    with session_scope(engine) as s:
        out = {
            app: " ".join(f"{d.strategy}:{d.status}" for d in list_decisions(s, app=app).items)
            or "none"
            for app in APPS
        }
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> None:
    """Print how often each app ends as its case says, over ``--seeds`` seeds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args(argv)
    seen: dict[str, Counter[str]] = {app: Counter() for app in APPS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            for app, end in verdicts(seed, Path(tmp)).items():
                seen[app][end] += 1
    for app in APPS:
        case = CASES.get(app)
        want = f"{case.strategy}:{case.verdict}" if case is not None else "none"
        held = sum(
            n for end, n in seen[app].items()
            if (case is None and end == "none")
            or (case is not None and end.count(":") == 1
                and end.split(":")[0] == case.strategy and case.ends(end.split(":")[1]))
        )  # fmt: skip
        print(f"{app:8} expected {want:30} held {held}/{args.seeds}  {dict(seen[app])}")


if __name__ == "__main__":
    main()
