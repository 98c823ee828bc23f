"""The fleet mode's report: the loop's end state against the per-task oracle, and its costs.

- **oracle**: per task, the cheap model iff its accuracy >= the expensive model's minus the
  tolerance; its *end-state savings* are the fleet's cost per call saved against every task on
  the expensive model, each task weighted by its traffic (expected calls/s);
- the loop's end-state savings the same way with the model each task ended on, and their share
  of the oracle's;
- **degraded**: tasks that ended on a model worse than the expensive one by more than the
  tolerance; **wrongly left**: tasks the oracle moves to the cheap model that ended on the
  expensive one;
- **exploration cost**: the expected quality the canary calls lost against the baseline model
  of the moment (expected extra wrong answers), and the money spent testing: shadow calls plus
  canary calls (or a holdback) costing more than the baseline's;
- **verdicts** per task, with the simulated hours from the start to each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from simulator.ledger import ConfigChange

__all__ = ["FleetReport", "TaskResult", "Verdict", "verdicts_of"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verdict seen in the served config: ``promote`` or ``rollback`` of ``model``."""

    kind: str
    model: str
    hours: float  # simulated hours from the start


def verdicts_of(changes: Sequence[ConfigChange], start: datetime, default: str) -> list[Verdict]:
    """The promotions and rollbacks in a task's config changes (see the module docstring).

    A change of the task's model is a promotion, unless it goes back to the model it had before
    its last promotion: a rollback after promotion. A canary of another model that ends
    without the model changing is a rollback; a canary of the model before the last promotion
    is that promotion's holdback, not a trial.
    """
    out: list[Verdict] = []
    current = before = default  # the task's model, and the one before its last promotion
    trial: str | None = None  # the model of an open canary
    for change in changes:
        model = change.model or default
        hours = (change.at - start).total_seconds() / 3600
        promoted = bool(out) and out[-1].kind == "promote" and out[-1].model == current
        if model != current:
            kind = "rollback" if promoted and model == before else "promote"
            out.append(Verdict(kind, current if kind == "rollback" else model, hours))
            before, current, trial = current, model, None
            promoted = kind == "promote"
        elif trial is not None and change.canary_model != trial:
            out.append(Verdict("rollback", trial, hours))
            trial = None
        holdback = promoted and change.canary_model == before
        if change.canary_model not in (None, model) and not holdback:
            trial = change.canary_model
    return out


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One task's truth, end state and costs."""

    task: str
    rate_per_s: float
    coverage: float
    rho: float
    delay_s: float  # the feedback's largest delay (0: scored inline)
    acc_big: float
    acc_small: float
    oracle_model: str
    final_model: str
    verdicts: list[Verdict]
    calls: int = 0
    canary_calls: int = 0
    shadow_calls: int = 0
    explore_quality_lost: float = 0.0
    explore_usd: float = 0.0
    shadow_usd: float = 0.0
    default_usd: float = 0.0
    served_usd: float = 0.0
    oracle_usd: float = 0.0

    def accuracy(self, model: str, big: str = "gpt-4o") -> float:
        """The true accuracy of ``model`` (the expensive or the cheap one)."""
        return self.acc_big if model == big else self.acc_small


@dataclass(frozen=True, slots=True)
class FleetReport:
    """The fleet run's figures (see the module docstring)."""

    tasks: list[TaskResult]
    hours: float
    tolerance: float
    shadow: bool
    cost_big: float  # expected USD per call of each model
    cost_small: float
    big: str = "gpt-4o"
    deployments: dict[str, int] = field(default_factory=dict)  # "strategy/status" → count
    events: int = 0
    wall_s: float = 0.0
    periods: int = 0

    def _cost(self, model: str) -> float:
        return self.cost_big if model == self.big else self.cost_small

    def _end_savings(self, pick: str) -> float:
        rate = sum(t.rate_per_s for t in self.tasks)
        spent = sum(t.rate_per_s * self._cost(getattr(t, pick)) for t in self.tasks)
        return round(1 - spent / (rate * self.cost_big), 12) + 0.0 if rate else 0.0

    @property
    def oracle_savings(self) -> float:
        """The oracle's end-state savings (traffic-weighted cost per call)."""
        return self._end_savings("oracle_model")

    @property
    def loop_savings(self) -> float:
        """The loop's end-state savings, the same way."""
        return self._end_savings("final_model")

    @property
    def share_of_oracle(self) -> float | None:
        """The loop's end-state savings as a share of the oracle's (None: the oracle saves 0)."""
        oracle = self.oracle_savings
        return self.loop_savings / oracle if oracle > 0 else None

    def degraded(self) -> list[TaskResult]:
        """Tasks that ended on a model worse than the expensive one by more than the tolerance."""
        return [
            t
            for t in self.tasks
            if t.accuracy(t.final_model, self.big) < t.acc_big - self.tolerance - 1e-12
        ]

    def wrongly_left(self) -> list[TaskResult]:
        """Tasks the oracle moves to the cheap model that ended on the expensive one."""
        return [t for t in self.tasks if t.oracle_model != self.big and t.final_model == self.big]

    def verdict_counts(self) -> dict[str, int]:
        """Verdicts by kind and rightness: ``promote/right``, ``rollback/wrong``..."""
        counts: Counter[str] = Counter()
        for t in self.tasks:
            for v in t.verdicts:
                good = t.accuracy(v.model, self.big) >= t.acc_big - self.tolerance - 1e-12
                right = good if v.kind == "promote" else not good
                counts[f"{v.kind}/{'right' if right else 'wrong'}"] += 1
        return dict(sorted(counts.items()))

    def exploration(self) -> dict[str, float]:
        """Quality lost and money spent testing (shadow calls included)."""
        calls = sum(t.calls for t in self.tasks) or 1
        default = sum(t.default_usd for t in self.tasks) or 1.0
        lost = sum(t.explore_quality_lost for t in self.tasks)
        canary_usd = sum(t.explore_usd for t in self.tasks)
        shadow_usd = sum(t.shadow_usd for t in self.tasks)
        return {
            "wrong_answers": lost,
            "wrong_answers_share": lost / calls,
            "canary_usd": canary_usd,
            "shadow_usd": shadow_usd,
            "usd_share_of_default": (canary_usd + shadow_usd) / default,
            "canary_calls": float(sum(t.canary_calls for t in self.tasks)),
            "shadow_calls": float(sum(t.shadow_calls for t in self.tasks)),
        }

    def run_savings(self) -> tuple[float, float]:
        """Savings over the whole run (testing and shadow spend included) and the oracle's."""
        default = sum(t.default_usd for t in self.tasks)
        if not default:
            return 0.0, 0.0
        spent = sum(t.served_usd + t.shadow_usd for t in self.tasks)
        return 1 - spent / default, 1 - sum(t.oracle_usd for t in self.tasks) / default

    def render(self) -> str:
        """A compact table per task, then the fleet's figures."""
        lines = [
            f"{'task':5} {'calls/s':>7} {'cover':>5} {'delay':>6} {'rho':>4} {'acc 4o':>6} "
            f"{'gap':>6} {'oracle':>6} {'final':>6}  verdicts (simulated hours)"
        ]
        short = {self.big: "4o"}
        for t in self.tasks:
            delay = f"{t.delay_s:.0f}s" if t.delay_s else "inline"
            flag = ""
            if t in self.degraded():
                flag = "  DEGRADED"
            elif t in self.wrongly_left():
                flag = "  left on 4o"
            verdicts = ", ".join(f"{v.kind[0].upper()} {v.hours:.1f}" for v in t.verdicts) or "-"
            lines.append(
                f"{t.task:5} {t.rate_per_s:>7.2f} {t.coverage:>5.0%} {delay:>6} {t.rho:>4.2f} "
                f"{t.acc_big:>6.3f} {t.acc_small - t.acc_big:>+6.3f} "
                f"{short.get(t.oracle_model, 'mini'):>6} {short.get(t.final_model, 'mini'):>6}  "
                f"{verdicts}{flag}"
            )
        share = self.share_of_oracle
        explore = self.exploration()
        run, run_oracle = self.run_savings()
        switch = sum(1 for t in self.tasks if t.oracle_model != self.big)
        cheap = sum(1 for t in self.tasks if t.final_model != self.big)
        promotes = [v.hours for t in self.tasks for v in t.verdicts if v.kind == "promote"]
        rollbacks = [v.hours for t in self.tasks for v in t.verdicts if v.kind == "rollback"]
        lines += [
            "",
            f"{len(self.tasks)} tasks, {self.hours:g} simulated hours, tolerance "
            f"{self.tolerance}, shadow {'on' if self.shadow else 'off'}; {self.events} events, "
            f"{self.periods} periods, {self.wall_s:.0f} s wall",
            f"oracle: {switch} tasks on gpt-4o-mini, end-state savings {self.oracle_savings:.1%}",
            f"loop:   {cheap} tasks on gpt-4o-mini, end-state savings {self.loop_savings:.1%}"
            + (f" = {share:.0%} of the oracle's" if share is not None else ""),
            f"degraded beyond tolerance: {len(self.degraded())}"
            + (f" ({', '.join(t.task for t in self.degraded())})" if self.degraded() else "")
            + f"; wrongly left on gpt-4o: {len(self.wrongly_left())}",
            f"verdicts: {self.verdict_counts() or '-'}; deployments: {self.deployments or '-'}",
            "hours to verdicts: promote "
            + _quartiles(promotes)
            + "; rollback "
            + _quartiles(rollbacks),
            f"exploration: {explore['wrong_answers']:.0f} expected extra wrong answers "
            f"({explore['wrong_answers_share']:.3%} of calls) on {explore['canary_calls']:.0f} "
            f"canary calls; spent ${explore['canary_usd']:.2f} on canaries + "
            f"${explore['shadow_usd']:.2f} on {explore['shadow_calls']:.0f} shadow calls = "
            f"{explore['usd_share_of_default']:.2%} of the all-gpt-4o cost",
            f"savings over the run (testing included): {run:.1%} vs the oracle's {run_oracle:.1%}",
        ]
        return "\n".join(lines)


def _quartiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    pick = [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.0, 0.5, 1.0)]
    return f"n {len(values)}, min {pick[0]:.1f} / median {pick[1]:.1f} / max {pick[2]:.1f}"
