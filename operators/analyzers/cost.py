"""Cost analyzer: daily/monthly budget burn with projections, and spend spikes per task.

Budgets are app-wide (task ``"*"``): spend accumulates per UTC day and per UTC month, keyed by
the period's start. Each threshold (warning, critical, projection) fires once per day or month.
Spikes compare one task's spend rate (USD/s) with the rolling median of its earlier rates; the
baseline warms up first and never learns from a flagged period.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from core.insights import APP_WIDE, AnalyzerName, Insight, Severity, WindowGroup
from core.settings import AnalyzerSettings, BudgetSettings
from core.stats import WindowStats
from operators.analyzers.base import insight_maker

__all__ = ["CostAnalyzer", "CostState", "TaskCostBaseline"]

#: The statistic behind each insight kind this analyzer emits (``evidence["statistic"]``).
STATISTICS: dict[str, str] = {
    "daily_budget": "budget_share",
    "monthly_budget": "budget_share",
    "daily_budget_projection": "projected_spend",
    "monthly_budget_projection": "projected_spend",
    "cost_spike": "ratio_to_baseline",
}
_insight = insight_maker("cost", STATISTICS)

_Evidence = dict[str, float | str]
_PERIOD_NAMES = {"day": "daily", "month": "monthly"}
_IMPLIED = {  # the levels a burn level makes moot for the rest of its day/month
    "critical": ("critical", "warning", "projection"),
    "warning": ("warning", "projection"),
    "projection": ("projection",),
}


@dataclass(slots=True)
class TaskCostBaseline:
    """The spend rates (USD/s) of one task's unflagged periods, oldest first."""

    rates: list[float] = field(default_factory=list)


@dataclass(slots=True)
class CostState:
    """Budget burn of the current UTC day/month and the spike baselines of one app; picklable.

    ``day_fired``/``month_fired`` hold the levels (``warning``, ``critical``, ``projection``)
    already reported for the current day/month.
    """

    day: date | None = None
    day_usd: float = 0.0
    day_fired: set[str] = field(default_factory=set)
    month: tuple[int, int] | None = None
    month_usd: float = 0.0
    month_fired: set[str] = field(default_factory=set)
    tasks: dict[str, TaskCostBaseline] = field(default_factory=dict)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _usd(amount: float) -> str:
    return f"${amount:,.2f}"


def _unit_economics(windows: Sequence[WindowStats]) -> _Evidence:
    """Cost, calls and tokens of some windows, with cost per successful call and per 1k tokens."""
    cost = sum(w.cost_usd for w in windows)
    ok = sum(w.ok_count for w in windows)
    tokens = sum(w.input_tokens + w.output_tokens for w in windows)
    out: _Evidence = {
        "period_cost_usd": cost,
        "calls": float(sum(w.count for w in windows)),
        "ok_calls": float(ok),
        "tokens": float(tokens),
    }
    if ok > 0:
        out["cost_per_success_usd"] = cost / ok
    if tokens > 0:
        out["cost_per_1k_tokens_usd"] = cost / tokens * 1000.0
    fixed_of = sum(w.prompt_tokens_fixed_of for w in windows)
    if fixed_of > 0:  # the prompt strategy's evidence: how much of the input is fixed prompt
        fixed = sum(w.prompt_tokens_fixed for w in windows)
        out["prompt_tokens_fixed"] = float(fixed)
        out["fixed_prompt_share"] = fixed / fixed_of
    return out


class CostAnalyzer:
    """Budget burn, end-of-period projections and spend spikes (CONTRACT.md §3 insights)."""

    name: AnalyzerName = "cost"

    def __init__(self, settings: AnalyzerSettings, budgets: BudgetSettings) -> None:
        """Keep the thresholds.

        Args:
            settings: Warm-up, baseline length, minimum calls and the spike factor.
            budgets: Daily/monthly budgets in USD (0: none) and the warning/critical shares.
        """
        self._s = settings
        self._b = budgets

    def initial_state(self) -> CostState:
        """No spend and no baselines yet."""
        return CostState()

    def analyze(self, state: CostState, group: WindowGroup) -> tuple[CostState, list[Insight]]:
        """Judge one period of one app.

        Args:
            state: The app's state after the previous period (not mutated).
            group: Every window of the app for this period.

        Returns:
            The next state and the insights of this period.
        """
        state = copy.deepcopy(state)
        seconds = (group.window_end - group.window_start).total_seconds()
        out = self._budgets(state, group, seconds)
        for task, windows in sorted(group.tasks().items()):
            out += self._spike(state, group, task, windows, seconds)
        return state, out

    def _budgets(self, state: CostState, group: WindowGroup, seconds: float) -> list[Insight]:
        start, end = _utc(group.window_start), _utc(group.window_end)
        day, month = start.date(), (start.year, start.month)
        if state.day is not None and day < state.day:
            return []  # a period of a past day: the day's burn was judged already
        if month != state.month:
            state.month, state.month_usd, state.month_fired = month, 0.0, set()
        if day != state.day:
            state.day, state.day_usd, state.day_fired = day, 0.0, set()
        cost = sum(w.cost_usd for w in group.windows)
        state.day_usd += cost
        state.month_usd += cost
        rate = cost / seconds if seconds > 0 else 0.0
        next_day = datetime.combine(day + timedelta(days=1), time(), UTC)
        y, m = month
        next_month = datetime(y + m // 12, m % 12 + 1, 1, tzinfo=UTC)
        economics = _unit_economics(group.windows)
        out: list[Insight] = []
        for period, budget, spent, fired, until in (
            ("day", self._b.daily_usd, state.day_usd, state.day_fired, next_day),
            ("month", self._b.monthly_usd, state.month_usd, state.month_fired, next_month),
        ):
            if budget > 0:
                left = max(0.0, (until - end).total_seconds())
                evidence: _Evidence = {
                    "spent_usd": spent,
                    "budget_usd": budget,
                    "burn_share": spent / budget,
                    "warning_share": self._b.warning,
                    "critical_share": self._b.critical,
                    "spend_rate_usd_per_s": rate,
                    "window_seconds": seconds,
                    "seconds_left": left,
                    "projected_usd": spent + rate * left,
                    "projected_share": (spent + rate * left) / budget,
                    **economics,
                }
                out += self._burn(group, period, fired, evidence)
        return out

    def _burn(
        self, group: WindowGroup, period: str, fired: set[str], evidence: _Evidence
    ) -> list[Insight]:
        """At most one insight for one budget: the level reached, unless it fired already."""
        spent, budget = float(evidence["spent_usd"]), float(evidence["budget_usd"])
        share, projected = spent / budget, float(evidence["projected_usd"])
        if share >= self._b.critical:
            level = "critical"
        elif share >= self._b.warning:
            level = "warning"
        elif projected > budget:
            level = "projection"
        else:
            return []
        if level in fired:
            return []
        fired.update(_IMPLIED[level])  # a higher level makes the lower ones moot
        name = _PERIOD_NAMES[period]
        projection = f"projected {_usd(projected)} by the end of the {period}"
        if level == "projection":
            evidence["rule"] = "projected_usd > budget_usd"
            hourly = float(evidence["spend_rate_usd_per_s"]) * 3600
            message = (
                f"{name} spend projected to {_usd(projected)}, over the budget of {_usd(budget)} "
                f"(spent {_usd(spent)}, {share:.0%}, at {_usd(hourly)}/h)"
            )
            return [
                _insight(
                    group,
                    APP_WIDE,
                    f"{name}_budget_projection",
                    "warning",
                    f"cost_usd.{name}_projected",
                    projected,
                    budget,
                    projected / budget,
                    message,
                    evidence,
                )
            ]
        threshold = self._b.critical if level == "critical" else self._b.warning
        evidence["rule"] = f"burn_share >= {level}_share"
        message = (
            f"{name} spend {_usd(spent)} is {share:.0%} of the budget of {_usd(budget)} "
            f"(>= {threshold:.0%}); {projection}"
        )
        severity: Severity = "critical" if level == "critical" else "warning"
        return [
            _insight(
                group,
                APP_WIDE,
                f"{name}_budget",
                severity,
                f"cost_usd.{name}",
                spent,
                budget,
                share,
                message,
                evidence,
            )
        ]

    def _spike(
        self,
        state: CostState,
        group: WindowGroup,
        task: str,
        windows: list[WindowStats],
        seconds: float,
    ) -> list[Insight]:
        """A task's spend rate against the rolling median of its unflagged earlier rates."""
        if seconds <= 0:
            return []
        economics = _unit_economics(windows)
        rate = float(economics["period_cost_usd"]) / seconds
        calls = sum(w.count for w in windows)
        hist = state.tasks.setdefault(task, TaskCostBaseline())
        if len(hist.rates) >= self._s.warmup_windows and calls >= self._s.min_samples:
            baseline = statistics.median(hist.rates)
            if baseline > 0 and rate >= baseline * self._s.cost_spike_factor:
                ratio = rate / baseline
                evidence: _Evidence = {
                    "spend_rate_usd_per_s": rate,
                    "baseline_usd_per_s": baseline,
                    "rate_ratio": ratio,
                    "cost_spike_factor": self._s.cost_spike_factor,
                    "baseline_samples": float(len(hist.rates)),
                    "baseline_windows": float(self._s.baseline_windows),
                    "warmup_windows": float(self._s.warmup_windows),
                    "min_samples": float(self._s.min_samples),
                    "window_seconds": seconds,
                    "baseline": "rolling median",
                    **economics,
                }
                message = (
                    f"task {task} spends {_usd(rate * 3600)}/h, {ratio:.1f}x its baseline of "
                    f"{_usd(baseline * 3600)}/h (spike at >= {self._s.cost_spike_factor:g}x); "
                    f"{_usd(float(economics['period_cost_usd']))} this window"
                )
                # a flagged period does not teach the baseline
                return [
                    _insight(
                        group,
                        task,
                        "cost_spike",
                        "warning",
                        "cost_usd.rate",
                        rate,
                        baseline,
                        ratio,
                        message,
                        evidence,
                    )
                ]
        hist.rates.append(rate)
        del hist.rates[: max(0, len(hist.rates) - self._s.baseline_windows)]
        return []
