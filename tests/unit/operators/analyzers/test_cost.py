"""Cost analyzer (`operators/analyzers/cost.py`): budget burn, projections, spend spikes."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.insights import APP_WIDE, Insight, WindowGroup, insight_id
from core.settings import AnalyzerSettings, BudgetSettings
from core.stats import LatencyStats, QualityStats, WindowStats
from operators.analyzers.cost import CostAnalyzer, CostState

APP = "support"
DAY = datetime(2024, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
FIVE_MIN = timedelta(minutes=5)


def window(
    start: datetime,
    length: timedelta,
    cost: float,
    *,
    task: str = "chat",
    count: int = 50,
    ok: int | None = None,
    tokens: tuple[int, int] = (1000, 500),
) -> WindowStats:
    ok_count = count if ok is None else ok
    seconds = length.total_seconds()
    return WindowStats(
        kind="tumbling",
        window_start=start,
        window_end=start + length,
        app=APP,
        task=task,
        model="gpt-4o-mini",
        variant="control",
        count=count,
        ok_count=ok_count,
        error_count=count - ok_count,
        errors_by_type={"timeout": count - ok_count} if count > ok_count else {},
        latency_ms=LatencyStats(p50=100.0, p90=150.0, p95=180.0, p99=250.0, max=300.0),
        ttft_ms=None,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cache_read_tokens=0,
        cost_usd=cost,
        cost_per_success_usd=cost / ok_count if ok_count else None,
        quality=QualityStats(count=0, mean=None, stddev=None, ci95_low=None, ci95_high=None),
        distinct_prompts=count,
        repeat_ratio=0.0,
        rate_per_s=count / seconds,
        peak_rate_per_s=count / seconds,
        first_event_at=start,
        last_event_at=start + length - timedelta(seconds=1),
    )


def group(windows: Sequence[WindowStats]) -> WindowGroup:
    return WindowGroup(
        app=APP,
        window_start=windows[0].window_start,
        window_end=windows[0].window_end,
        windows=list(windows),
    )


def periods(
    start: datetime, length: timedelta, costs: Iterable[float], count: int = 50
) -> list[WindowGroup]:
    """One single-window group per cost, back to back."""
    return [
        group([window(start + i * length, length, c, count=count)]) for i, c in enumerate(costs)
    ]


def run(
    analyzer: CostAnalyzer, groups: Iterable[WindowGroup], state: CostState | None = None
) -> tuple[CostState, list[Insight]]:
    state = analyzer.initial_state() if state is None else state
    out: list[Insight] = []
    for g in groups:
        state, found = analyzer.analyze(state, g)
        out += found
    return state, out


def budgets(daily: float = 0.0, monthly: float = 0.0) -> CostAnalyzer:
    return CostAnalyzer(AnalyzerSettings(), BudgetSettings(daily_usd=daily, monthly_usd=monthly))


def spikes(
    warmup_windows: int = 5,
    baseline_windows: int = 30,
    min_samples: int = 30,
    cost_spike_factor: float = 2.0,
) -> CostAnalyzer:
    thresholds = AnalyzerSettings(
        warmup_windows=warmup_windows,
        baseline_windows=baseline_windows,
        min_samples=min_samples,
        cost_spike_factor=cost_spike_factor,
    )
    return CostAnalyzer(thresholds, BudgetSettings())


# ---------------------------------------------------------------- budget burn and projection


def test_projection_is_right_to_the_cent() -> None:
    """$30 spent by 12:00 UTC at a steady $2.50/h → $60.00 by midnight, over a $50 budget."""
    analyzer = budgets(daily=50.0)
    state, found = run(analyzer, periods(DAY, HOUR, [2.5] * 11))
    assert [(i.kind, i.window_start) for i in found] == [("daily_budget_projection", DAY)]
    assert found[0].value == pytest.approx(60.0, abs=0.005)
    assert state.day_usd == pytest.approx(27.5)

    # The same judgement, taken at noon from a state that has seen $27.50.
    state = CostState(day=DAY.date(), day_usd=27.5, month=(2024, 5), month_usd=27.5)
    noon = group([window(DAY + 11 * HOUR, HOUR, 2.5)])
    _, found = analyzer.analyze(state, noon)
    (ins,) = found
    assert ins.kind == "daily_budget_projection"
    assert ins.severity == "warning"
    assert ins.task == APP_WIDE
    assert ins.metric == "cost_usd.daily_projected"
    assert round(ins.value, 2) == 60.00
    assert ins.baseline == 50.0
    assert ins.score == pytest.approx(1.2)
    ev = ins.evidence
    assert round(float(ev["projected_usd"]), 2) == 60.00
    assert ev["spent_usd"] == 30.0
    assert ev["budget_usd"] == 50.0
    assert ev["burn_share"] == pytest.approx(0.6)
    assert ev["seconds_left"] == 12 * 3600
    assert ev["window_seconds"] == 3600
    assert ev["spend_rate_usd_per_s"] == pytest.approx(2.5 / 3600)
    assert "$60.00" in ins.message
    assert "$50.00" in ins.message
    assert "$30.00" in ins.message
    assert ins.id == insight_id(
        APP, APP_WIDE, "cost", "daily_budget_projection", DAY + 11 * HOUR, ins.metric
    )


def test_projection_under_the_budget_is_quiet() -> None:
    """$1.50/h projects to $36.00 for a $50 budget and the burn never reaches 80 %."""
    state, found = run(budgets(daily=50.0), periods(DAY, HOUR, [1.5] * 24))
    assert found == []
    assert state.day_usd == 36.0


def test_burn_warning_at_80_and_critical_at_90_once_per_day_then_again_next_day() -> None:
    analyzer = budgets(daily=100.0)
    day1 = periods(DAY, HOUR, [79.0, 1.0, 5.0, 5.0, 5.0, 1.0])
    day2 = periods(DAY + timedelta(days=1), HOUR, [79.0, 1.0, 10.0, 1.0])
    state, everything = run(analyzer, day1 + day2)
    found = [i for i in everything if i.task == APP_WIDE]  # (day 2 at 00:00 is a spike too)
    got = [(i.kind, i.severity, i.window_start, i.value, i.score) for i in found]
    d2 = DAY + timedelta(days=1)
    assert got == [
        ("daily_budget_projection", "warning", DAY, pytest.approx(1896.0), pytest.approx(18.96)),
        ("daily_budget", "warning", DAY + HOUR, 80.0, 0.8),
        ("daily_budget", "critical", DAY + 3 * HOUR, 90.0, 0.9),
        ("daily_budget_projection", "warning", d2, pytest.approx(1896.0), pytest.approx(18.96)),
        ("daily_budget", "warning", d2 + HOUR, 80.0, 0.8),
        ("daily_budget", "critical", d2 + 2 * HOUR, 90.0, 0.9),
    ]
    warning = found[1]
    assert warning.metric == "cost_usd.daily"
    assert warning.baseline == 100.0
    assert warning.evidence["warning_share"] == 0.8
    assert warning.evidence["critical_share"] == 0.9
    assert warning.evidence["rule"] == "burn_share >= warning_share"
    # $80 by 02:00 + $1/h for 22 h
    assert warning.evidence["projected_usd"] == pytest.approx(102.0)
    assert "$80.00" in warning.message
    assert "$102.00" in warning.message
    assert state.day == d2.date()
    assert state.day_usd == 91.0
    assert state.day_fired == {"projection", "warning", "critical"}


def test_jump_straight_to_critical_reports_once() -> None:
    _, found = run(budgets(daily=100.0), periods(DAY, HOUR, [95.0, 1.0, 1.0]))
    assert [(i.kind, i.severity) for i in found] == [("daily_budget", "critical")]
    assert found[0].value == 95.0


def test_no_budget_insights_when_budgets_are_zero() -> None:
    _, found = run(budgets(), periods(DAY, HOUR, [1000.0, 5000.0, 0.0, 9999.0]))
    assert [i for i in found if i.task == APP_WIDE] == []


def test_month_rollover_resets_the_burn_and_the_fired_levels() -> None:
    analyzer = budgets(monthly=1000.0)
    last_hour = datetime(2024, 1, 31, 23, tzinfo=UTC)
    state, found = run(analyzer, periods(last_hour, HOUR, [850.0, 1.0, 849.0]))
    got = [(i.kind, i.severity, i.window_start, i.value) for i in found]
    assert got == [
        ("monthly_budget", "warning", last_hour, 850.0),
        ("monthly_budget", "warning", last_hour + 2 * HOUR, 850.0),
    ]
    assert found[0].evidence["seconds_left"] == 0.0  # the window ends at the month's end
    assert found[0].evidence["projected_usd"] == 850.0
    assert found[0].metric == "cost_usd.monthly"
    assert state.month == (2024, 2)
    assert state.month_usd == 850.0
    assert state.day_usd == 850.0


def test_month_accumulates_over_days_and_projects_to_the_month_end() -> None:
    analyzer = budgets(monthly=1000.0)
    start = datetime(2024, 12, 15, 12, tzinfo=UTC)
    state, found = run(analyzer, periods(start, timedelta(days=1), [100.0] * 3))
    # rate $100/day; after Dec 15 12:00 to Dec 16 12:00, 15.5 days left → $100 + $1550
    (first,) = [i for i in found if i.window_start == start]
    assert first.kind == "monthly_budget_projection"
    assert first.evidence["seconds_left"] == 15.5 * 86400
    assert first.value == pytest.approx(1650.0)
    assert "$1,650.00" in first.message
    assert len(found) == 1  # the projection fires once per month
    assert state.month == (2024, 12)
    assert state.month_usd == 300.0
    state, _ = run(analyzer, periods(datetime(2025, 1, 1, tzinfo=UTC), HOUR, [1.0]), state)
    assert (state.month, state.month_usd, state.month_fired) == ((2025, 1), 1.0, set())


def test_a_period_of_a_past_day_does_not_touch_the_burn() -> None:
    analyzer = budgets(daily=100.0)
    state, _ = run(analyzer, periods(DAY + timedelta(days=1), HOUR, [10.0]))
    state, found = run(analyzer, periods(DAY, HOUR, [95.0]), state)
    assert [i for i in found if i.task == APP_WIDE] == []
    assert (state.day, state.day_usd) == ((DAY + timedelta(days=1)).date(), 10.0)


def test_unit_economics_are_in_the_evidence() -> None:
    g = group(
        [
            window(DAY, HOUR, 3.0, task="chat", count=50, ok=40, tokens=(1000, 500)),
            window(DAY, HOUR, 1.0, task="sum", count=10, ok=10, tokens=(400, 100)),
        ]
    )
    analyzer = budgets(daily=4.0)
    _, found = analyzer.analyze(analyzer.initial_state(), g)
    (ins,) = found
    assert ins.kind == "daily_budget"
    assert ins.severity == "critical"
    ev = ins.evidence
    assert ev["period_cost_usd"] == 4.0
    assert ev["calls"] == 60
    assert ev["ok_calls"] == 50
    assert ev["tokens"] == 2000
    assert ev["cost_per_success_usd"] == pytest.approx(4.0 / 50)
    assert ev["cost_per_1k_tokens_usd"] == pytest.approx(2.0)


# ---------------------------------------------------------------- spend spikes


def test_spike_after_warmup_fires_and_is_not_learned() -> None:
    analyzer = spikes(warmup_windows=5, min_samples=30, cost_spike_factor=2.0)
    state, found = run(analyzer, periods(DAY, FIVE_MIN, [1.0] * 5 + [10.0, 10.0, 1.99]))
    assert [(i.kind, i.window_start) for i in found] == [
        ("cost_spike", DAY + 5 * FIVE_MIN),
        ("cost_spike", DAY + 6 * FIVE_MIN),  # the first spike did not raise the baseline
    ]
    ins = found[0]
    assert (ins.task, ins.severity, ins.metric) == ("chat", "warning", "cost_usd.rate")
    assert ins.value == pytest.approx(10.0 / 300)
    assert ins.baseline == pytest.approx(1.0 / 300)
    assert ins.score == pytest.approx(10.0)
    assert ins.evidence["baseline_samples"] == 5
    assert ins.evidence["cost_spike_factor"] == 2.0
    assert ins.evidence["cost_per_success_usd"] == pytest.approx(10.0 / 50)
    assert ins.evidence["cost_per_1k_tokens_usd"] == pytest.approx(10.0 / 1500 * 1000)
    assert "$120.00/h" in ins.message
    assert "$12.00/h" in ins.message
    assert state.tasks["chat"].rates == pytest.approx([1.0 / 300] * 5 + [1.99 / 300])


def test_no_spike_before_warmup() -> None:
    analyzer = spikes(warmup_windows=5)
    _, found = run(analyzer, periods(DAY, FIVE_MIN, [1.0] * 4 + [50.0]))
    assert found == []


def test_no_spike_from_too_few_calls() -> None:
    analyzer = spikes(warmup_windows=5, min_samples=30)
    groups = periods(DAY, FIVE_MIN, [1.0] * 5)
    groups += periods(DAY + 5 * FIVE_MIN, FIVE_MIN, [10.0], count=29)
    groups += periods(DAY + 6 * FIVE_MIN, FIVE_MIN, [10.0], count=30)
    _, found = run(analyzer, groups)
    assert [i.window_start for i in found] == [DAY + 6 * FIVE_MIN]
    assert found[0].evidence["calls"] == 30


def test_baseline_is_bounded_and_per_task() -> None:
    analyzer = spikes(warmup_windows=2, baseline_windows=3)
    groups = [
        group(
            [
                window(DAY + i * FIVE_MIN, FIVE_MIN, c, task="chat"),
                window(DAY + i * FIVE_MIN, FIVE_MIN, 1.0, task="sum"),
            ]
        )
        for i, c in enumerate([5.0, 5.0, 1.0, 1.0, 1.0, 2.5])
    ]
    state, found = run(analyzer, groups)
    # chat: after [5, 5] the 1s are low, not spikes; the window forgets the 5s; 2.5 >= 2 x 1
    assert [(i.task, i.window_start) for i in found] == [("chat", DAY + 5 * FIVE_MIN)]
    assert state.tasks["chat"].rates == pytest.approx([1.0 / 300] * 3)
    assert state.tasks["sum"].rates == pytest.approx([1.0 / 300] * 3)


# ---------------------------------------------------------------- state and identity


def test_state_is_picklable_and_not_mutated() -> None:
    analyzer = budgets(daily=10.0, monthly=100.0)
    state, _ = run(analyzer, periods(DAY, HOUR, [1.0, 2.0, 9.0]))
    before = copy.deepcopy(state)
    nxt, _ = analyzer.analyze(state, periods(DAY + 3 * HOUR, HOUR, [5.0])[0])
    assert state == before
    assert nxt != before
    assert pickle.loads(pickle.dumps(nxt)) == nxt


def test_replay_gives_the_same_ids() -> None:
    analyzer = budgets(daily=100.0)
    groups = periods(DAY, HOUR, [79.0, 1.0, 10.0])
    _, first = run(analyzer, groups)
    _, second = run(analyzer, groups)
    assert [i.id for i in first] == [i.id for i in second]
    assert len({i.id for i in first}) == 3


# ---------------------------------------------------------------- properties

_costs = st.one_of(st.just(0.0), st.floats(1e-3, 100.0, allow_nan=False, allow_infinity=False))


@settings(max_examples=80, deadline=None)
@given(
    costs=st.lists(st.tuples(_costs, _costs), min_size=1, max_size=20),
    daily=st.floats(1.0, 500.0),
    monthly=st.floats(1.0, 5000.0),
    k_exp=st.integers(-8, 8),
)
def test_scaling_costs_scales_the_evidence(
    costs: list[tuple[float, float]], daily: float, monthly: float, k_exp: int
) -> None:
    """Costs and budgets times k (a power of two: exact in floats): money times k, same findings."""
    k = 2.0**k_exp

    def scenario(scale: float) -> list[Insight]:
        analyzer = CostAnalyzer(
            AnalyzerSettings(warmup_windows=3),
            BudgetSettings(daily_usd=daily * scale, monthly_usd=monthly * scale),
        )
        start = datetime(2024, 5, 31, 20, tzinfo=UTC)  # crosses a day and a month
        groups = [
            group(
                [
                    window(start + i * HOUR, HOUR, a * scale, task="chat"),
                    window(start + i * HOUR, HOUR, b * scale, task="sum"),
                ]
            )
            for i, (a, b) in enumerate(costs)
        ]
        return run(analyzer, groups)[1]

    base, scaled = scenario(1.0), scenario(k)
    assert [(i.id, i.kind, i.severity, i.task) for i in scaled] == [
        (i.id, i.kind, i.severity, i.task) for i in base
    ]
    for b, s in zip(base, scaled, strict=True):
        assert s.value == b.value * k
        assert s.baseline == (None if b.baseline is None else b.baseline * k)
        assert s.score == b.score
        assert s.evidence.keys() == b.evidence.keys()
        for key, v in b.evidence.items():
            in_usd = "usd" in key or key in ("value", "baseline")  # value/baseline: USD here
            expected = v * k if in_usd and isinstance(v, float) else v
            assert s.evidence[key] == expected, key


def test_cost_evidence_carries_the_fixed_prompt_share_when_calls_report_it() -> None:
    import msgspec

    analyzer = CostAnalyzer(AnalyzerSettings(), BudgetSettings(daily_usd=10.0))
    plain = window(DAY, HOUR, 9.5, tokens=(1000, 500))
    reported = msgspec.structs.replace(
        window(DAY, HOUR, 0.0, task="summarize", tokens=(4000, 100)),
        prompt_tokens_fixed=1500,
        prompt_tokens_fixed_of=2000,
    )
    _, found = analyzer.analyze(analyzer.initial_state(), group([plain, reported]))
    (budget,) = [i for i in found if i.kind == "daily_budget"]
    assert budget.evidence["prompt_tokens_fixed"] == 1500.0
    assert budget.evidence["fixed_prompt_share"] == 0.75  # 1500 of the 2000 reporting tokens
    _, quiet = analyzer.analyze(analyzer.initial_state(), group([plain]))
    assert "fixed_prompt_share" not in quiet[0].evidence
