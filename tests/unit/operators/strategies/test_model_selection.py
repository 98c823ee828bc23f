"""Model selection: Thompson sampling with a hard quality rule, canary exploration, replays."""

from __future__ import annotations

import math
import pickle
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from core.app_config import TaskConfig, apply_overrides
from core.decisions import stable_id
from core.settings import AnalyzerSettings, DecisionSettings
from core.stats import WindowStats
from operators.pricing import PriceTable
from operators.strategies import ModelSelection
from operators.strategies.model_selection import ModelSelectionState
from tests.unit.operators.strategies.helpers import APP, MINUTE, T0, TASK, period, window

CANDIDATES = ("gpt-4o-mini", "claude-3-5-haiku-latest")


def strategy(**kw: object) -> ModelSelection:
    d = DecisionSettings(candidates=CANDIDATES, **kw)  # type: ignore[arg-type]
    return ModelSelection(d, AnalyzerSettings(), PriceTable())


def incumbent(start: datetime = T0) -> WindowStats:
    return window(quality=(150, 0.85, 0.1), cost=2.0, start=start)


def test_unseen_cheaper_candidate_is_explored_through_a_canary() -> None:
    _, d = strategy().propose(ModelSelectionState(), period([incumbent()]))
    assert d is not None
    assert d.action == {"model": "gpt-4o-mini", "provider": "openai"}
    assert d.id == stable_id(APP, TASK, "model_selection", T0.isoformat(), "gpt-4o-mini")
    assert d.created_at == T0 + MINUTE
    assert d.confidence == d.evidence["p_best"]["gpt-4o-mini"] > 0.7
    assert d.expected_impact.cost_change_pct == pytest.approx(-94.0)
    assert d.expected_impact.quality_change == pytest.approx(0.0)
    assert d.evidence["candidates"]["gpt-4o-mini"]["cost_source"] == "price table"
    assert d.evidence["baseline_quality_n"] == 150
    assert d.evidence["quality_tolerance"] == 0.02
    assert [(r.metric, round(r.limit, 9), r.direction) for r in d.rollback_plan] == [
        ("latency_p95_ms", 480.0, "max"),
        ("error_rate", 0.01, "max"),
        ("cost_per_success_usd", 0.011, "max"),
    ]
    apply_overrides(TaskConfig(model="gpt-4o"), d.action)  # a valid override


def test_observed_canary_data_is_used_and_a_good_candidate_is_confident() -> None:
    canary = window(model="gpt-4o-mini", variant="canary", quality=(300, 0.86, 0.1), cost=0.2)
    _, d = strategy().propose(ModelSelectionState(), period([incumbent(), canary]))
    assert d is not None
    assert d.action["model"] == "gpt-4o-mini"
    c = d.evidence["candidates"]["gpt-4o-mini"]
    assert c["cost_source"] == "observed"
    assert c["cost_ratio"] == pytest.approx(0.1)
    assert c["quality_n"] == 300
    assert d.confidence > 0.9


def test_statistically_worse_candidate_is_never_proposed() -> None:
    worse = window(model="gpt-4o-mini", variant="canary", quality=(150, 0.80, 0.1), cost=0.1)
    _, d = strategy().propose(ModelSelectionState(), period([incumbent(), worse]))
    assert d is not None
    assert d.action["model"] == "claude-3-5-haiku-latest"
    p = norm.cdf((0.80 - 0.85 + 0.02) / math.sqrt(0.01 / 150 + 0.01 / 150))
    assert (
        d.evidence["excluded"]["gpt-4o-mini"]
        == f"quality worse by more than the tolerance (p = {p:.3g})"
    )


def test_candidate_over_the_latency_slo_is_excluded() -> None:
    slow = window(
        model="gpt-4o-mini", variant="canary", quality=(150, 0.9, 0.1), p95=1500, cost=0.1
    )
    _, d = strategy().propose(ModelSelectionState(), period([incumbent(), slow]))
    assert d is not None
    assert d.action["model"] == "claude-3-5-haiku-latest"
    assert d.evidence["excluded"] == {"gpt-4o-mini": "p95 1500 ms over the SLO"}


@pytest.mark.parametrize("n", [0, 1, 99])
def test_too_few_incumbent_quality_scores_propose_nothing(n: int) -> None:
    w = window(quality=(n, 0.85, 0.1) if n else None, cost=2.0)
    _, d = strategy().propose(ModelSelectionState(), period([w]))
    assert d is None


def test_quality_accumulates_over_periods() -> None:
    s = strategy()
    state, d = s.propose(s.initial_state(), period([window(quality=(60, 0.85, 0.1))]))
    assert d is None
    later = window(quality=(60, 0.85, 0.1), start=T0 + MINUTE)
    state, d = s.propose(state, period([later]))
    assert d is not None
    assert d.evidence["baseline_quality_n"] == 120


def test_no_candidates_or_only_the_incumbent_propose_nothing() -> None:
    for cands in ((), ("gpt-4o",)):
        s = ModelSelection(DecisionSettings(candidates=cands), AnalyzerSettings(), PriceTable())
        assert s.propose(s.initial_state(), period([incumbent()]))[1] is None


def test_a_proposed_candidate_waits_for_its_canary() -> None:
    s = strategy()
    state, d = s.propose(s.initial_state(), period([incumbent()]))
    assert d is not None
    assert d.action["model"] == "gpt-4o-mini"
    state, d = s.propose(state, period([incumbent(start=T0 + MINUTE)]))
    assert d is None or d.action["model"] != "gpt-4o-mini"
    hour = T0 + DecisionSettings().repropose_after
    _, d = s.propose(state, period([incumbent(start=hour)]))
    assert d is not None
    assert d.action["model"] == "gpt-4o-mini"


def test_config_names_the_incumbent() -> None:
    cfg = TaskConfig(model="gpt-4o-mini")
    ws = [incumbent(), window(model="gpt-4o-mini", quality=(150, 0.85, 0.1), cost=0.1)]
    _, d = strategy().propose(ModelSelectionState(), period(ws, config=cfg))
    assert d is None or d.evidence["incumbent"] == "gpt-4o-mini"


def test_replay_gives_identical_decisions_and_state_pickles() -> None:
    s = strategy()
    p = period([incumbent()])
    a = s.propose(s.initial_state(), p)
    b = s.propose(pickle.loads(pickle.dumps(s.initial_state())), p)
    assert a == b
    other = s.propose(s.initial_state(), period([incumbent()], start=T0 + MINUTE))[1]
    assert a[1] is not None
    assert other is not None
    assert other.id != a[1].id
    assert pickle.loads(pickle.dumps(a[0])) == a[0]


def test_history_is_bounded() -> None:
    s = ModelSelection(DecisionSettings(history_windows=3), AnalyzerSettings(), PriceTable())
    state = s.initial_state()
    for i in range(10):
        state, _ = s.propose(state, period([incumbent(start=T0 + i * MINUTE)]))
    assert len(state.history) == 3


@settings(max_examples=150, deadline=None)
@given(
    inc=st.tuples(st.integers(100, 2000), st.floats(0.3, 0.95), st.floats(0.01, 0.3)),
    cand=st.tuples(st.integers(2, 2000), st.floats(0.0, 1.0), st.floats(0.0, 0.3)),
    offset=st.integers(0, 10_000),
)
def test_never_proposes_a_statistically_worse_model(
    inc: tuple[int, float, float], cand: tuple[int, float, float], offset: int
) -> None:
    s = ModelSelection(
        DecisionSettings(candidates=("gpt-4o-mini",), thompson_draws=200),
        AnalyzerSettings(),
        PriceTable(),
    )
    start = T0 + offset * MINUTE  # a different RNG seed each time
    ws = [
        window(quality=inc, cost=2.0, start=start),
        window(model="gpt-4o-mini", variant="canary", quality=cand, cost=0.1, start=start),
    ]
    _, d = s.propose(s.initial_state(), period(ws))
    if d is None:
        return
    sd_i = inc[2]
    sd_c = cand[2] if cand[2] > 0 else sd_i
    z = (cand[1] - inc[1] + 0.02) / math.sqrt(sd_c**2 / cand[0] + sd_i**2 / inc[0])
    assert norm.cdf(z) >= 0.05


def test_the_evidence_says_when_a_dearer_model_restores_the_latency_slo() -> None:
    # the incumbent (gpt-4o-mini) breaks the 1000 ms p95 SLO; gpt-4o, dearer, meets it
    slow = window(model="gpt-4o-mini", quality=(150, 0.85, 0.1), p95=2400, cost=0.2)
    fast = window(model="gpt-4o", variant="canary", quality=(150, 0.87, 0.1), p95=600, cost=2.0)
    s = ModelSelection(
        DecisionSettings(candidates=("gpt-4o",), weight_latency=1.0),
        AnalyzerSettings(),
        PriceTable(),
    )
    _, d = s.propose(ModelSelectionState(), period([slow, fast]))
    assert d is not None
    assert d.action["model"] == "gpt-4o"
    assert d.expected_impact.cost_change_pct > DecisionSettings().max_cost_increase_pct
    assert d.evidence["restores_latency_slo"] is True
    _, d = strategy().propose(ModelSelectionState(), period([incumbent()]))
    assert d is not None
    assert d.evidence["restores_latency_slo"] is False  # the incumbent meets the SLO


def test_the_decision_projects_the_judges_time_and_a_quiet_task_waits_longer() -> None:
    from operators.strategies.model_selection import verdict_eta_h
    from operators.strategies.period import totals

    _, d = strategy().propose(ModelSelectionState(), period([incumbent()]))
    assert d is not None
    eta = d.evidence["expected_time_to_verdict_h"]
    assert eta is not None
    assert eta > 0
    base = totals([incumbent()])
    s = DecisionSettings()
    busy = verdict_eta_h(base, base.quality_mean, s, scored_per_s=5.0)
    quiet = verdict_eta_h(base, base.quality_mean, s, scored_per_s=0.05)
    assert busy is not None
    assert quiet is not None
    assert quiet == pytest.approx(100 * busy)
    assert verdict_eta_h(base, base.quality_mean, s, scored_per_s=0.0) is None
