"""The simulator: canary split, profile sampling, incidents, traffic, oracle, scenario files."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from core.app_config import AppConfig, CanaryConfig, TaskConfig
from operators.pricing import PriceTable
from simulator import (
    SCENARIOS,
    Burst,
    Fleet,
    Incident,
    ListSink,
    ModelProfile,
    Scenario,
    Simulation,
    StaticConfigSource,
    TaskProfile,
    bucket,
    load_scenario,
    serves_canary,
)

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
BIG, SMALL = "gpt-4o", "gpt-4o-mini"


def _task(**kw: object) -> TaskProfile:
    fields: dict[str, object] = {
        "app": "shop",
        "task": "classify",
        "model": BIG,
        "models": {
            BIG: ModelProfile(),
            SMALL: ModelProfile(quality_mean=0.7, latency_median_ms=300.0, error_rate=0.05),
        },
        "rate_per_s": 50.0,
    }
    fields.update(kw)
    return TaskProfile(**fields)  # type: ignore[arg-type]


def _config(weight: float | None, version: int = 3) -> AppConfig:
    canary = (
        None
        if weight is None
        else CanaryConfig(version=version + 1, weight=weight, overrides={"model": SMALL})
    )
    return AppConfig(
        app="shop", version=version, tasks={"classify": TaskConfig(model=BIG, canary=canary)}
    )


# -- consistent hashing -----------------------------------------------------------------------


@pytest.mark.parametrize("weight", [0.01, 0.05, 0.25, 0.5])
def test_split_matches_the_weight_within_binomial_tolerance(weight: float) -> None:
    n = 40_000
    share = sum(serves_canary(f"req-{i}", weight) for i in range(n)) / n
    assert abs(share - weight) < 4 * math.sqrt(weight * (1 - weight) / n)


def test_split_is_consistent_and_nested_across_stages() -> None:
    ids = [f"r{i}" for i in range(5000)]
    at_1 = {r for r in ids if serves_canary(r, 0.01)}
    at_5 = {r for r in ids if serves_canary(r, 0.05)}
    assert at_1 < at_5  # raising the weight only moves calls to the canary
    assert all(bucket(r) == bucket(r) for r in ids[:10])
    assert not any(serves_canary(r, 0.0) for r in ids)
    assert all(serves_canary(r, 1.0) for r in ids)


def test_fleet_serves_the_canary_share_with_its_overrides_and_tags() -> None:
    fleet = Fleet(Scenario("t", (_task(),)), start=T0, seed=1)
    events = fleet.calls(T0, T0 + timedelta(minutes=10), {"shop": _config(0.25)})
    canary = [e for e in events if e["variant"] == "canary"]
    baseline = [e for e in events if e["variant"] == "baseline"]
    share = len(canary) / len(events)
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / len(events))
    assert {e["model"] for e in canary} == {SMALL}
    assert {e["config_version"] for e in canary} == {4}
    assert {e["model"] for e in baseline} == {BIG}
    assert {e["config_version"] for e in baseline} == {3}
    assert all(serves_canary(e["request_id"], 0.25) for e in canary)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    ledger = fleet.ledgers[("shop", "classify")]
    assert ledger.calls == len(events)
    assert ledger.canary_calls == len(canary)
    assert ledger.by_model == {BIG: len(baseline), SMALL: len(canary)}


def test_without_config_the_default_model_serves_untagged() -> None:
    fleet = Fleet(Scenario("t", (_task(),)), start=T0, seed=2)
    events = fleet.calls(T0, T0 + timedelta(seconds=30), {})
    assert events
    assert {e["model"] for e in events} == {BIG}
    assert {e["variant"] for e in events} == {"baseline"}
    assert all("config_version" not in e for e in events)


# -- profile sampling -------------------------------------------------------------------------


def test_calls_follow_the_models_profile() -> None:
    fleet = Fleet(Scenario("t", (_task(rate_per_s=200.0),)), start=T0, seed=3)
    config = AppConfig(app="shop", version=1, tasks={"classify": TaskConfig(model=SMALL)})
    events = fleet.calls(T0, T0 + timedelta(minutes=5), {"shop": config})
    n = len(events)
    assert abs(n - 200 * 300) < 5 * math.sqrt(200 * 300)  # Poisson arrivals
    latency = np.array([e["latency_ms"] for e in events])
    assert np.median(latency) == pytest.approx(300.0, rel=0.03)
    ok = [e for e in events if e["status"] == "ok"]
    errors = [e for e in events if e["status"] == "error"]
    assert len(errors) / n == pytest.approx(0.05, abs=4 * math.sqrt(0.05 * 0.95 / n))
    assert {e["error_type"] for e in errors} == {"timeout", "server_error"}
    assert all(e["output_tokens"] == 0 and "quality" not in e for e in errors)
    quality = np.array([e["quality"] for e in ok])
    assert quality.mean() == pytest.approx(0.7, abs=0.005)
    assert quality.std() == pytest.approx(0.08, abs=0.005)
    assert np.mean([e["input_tokens"] for e in events]) == pytest.approx(800, rel=0.01)
    table = PriceTable()
    for e in events[:50]:
        tokens = np.array([[e["input_tokens"], e["output_tokens"], 0]], dtype=np.int64)
        expected = table.tokens_cost(SMALL, "openai", tokens)
        assert expected is not None
        assert e["cost_usd"] == pytest.approx(float(expected[0]), rel=1e-6)


def test_repeat_prompts_and_fixed_prompt_tokens() -> None:
    task = _task(repeat_ratio=0.5, distinct_prompts=5, prompt_tokens_fixed=1200)
    fleet = Fleet(Scenario("t", (task,)), start=T0, seed=4)
    events = fleet.calls(T0, T0 + timedelta(minutes=2), {})
    repeated = [e for e in events if e["prompt_hash"].startswith("p-")]
    assert len(repeated) / len(events) == pytest.approx(0.5, abs=0.03)
    assert len({e["prompt_hash"] for e in repeated}) == 5
    assert all(e["prompt_tokens_fixed"] == 1200 for e in events)
    assert min(e["input_tokens"] for e in events) > 1200


# -- incidents, traffic, oracle ---------------------------------------------------------------


def test_incident_regresses_the_model_from_its_time_only() -> None:
    incident = Incident(model=BIG, at=timedelta(minutes=10), latency_factor=3.0, quality_delta=-0.1)
    fleet = Fleet(Scenario("t", (_task(rate_per_s=100.0),), (incident,)), start=T0, seed=5)
    before = fleet.calls(T0, T0 + timedelta(minutes=5), {})
    after = fleet.calls(T0 + timedelta(minutes=10), T0 + timedelta(minutes=15), {})
    ratio = np.median([e["latency_ms"] for e in after]) / np.median(
        [e["latency_ms"] for e in before]
    )
    assert ratio == pytest.approx(3.0, rel=0.05)
    q_before = np.mean([e["quality"] for e in before if "quality" in e])
    q_after = np.mean([e["quality"] for e in after if "quality" in e])
    assert q_before - q_after == pytest.approx(0.1, abs=0.01)


def test_injected_incident_and_oracle() -> None:
    good_small = ModelProfile(latency_median_ms=400.0)
    task = _task(models={BIG: ModelProfile(), SMALL: good_small})
    fleet = Fleet(Scenario("t", (task,)), start=T0)
    assert fleet.oracle(task, T0) == SMALL
    assert fleet.is_good("shop", "classify", SMALL, T0) is True
    fleet.add_incident_now(T0 + timedelta(minutes=30), model=SMALL, latency_factor=3.0)
    assert fleet.oracle(task, T0 + timedelta(minutes=29)) == SMALL
    assert fleet.oracle(task, T0 + timedelta(minutes=30)) == BIG  # p95 over the SLO
    assert fleet.is_good("shop", "classify", SMALL, T0 + timedelta(hours=1)) is False
    assert fleet.is_good("shop", "classify", "unknown", T0) is None


def test_daily_cycle_and_bursts_shape_the_rate() -> None:
    burst = Burst(at=timedelta(hours=1), duration=timedelta(minutes=5), factor=4.0)
    task = _task(rate_per_s=10.0, daily_amplitude=0.5, peak_hour=14.0, bursts=(burst,))
    fleet = Fleet(Scenario("t", (task,)), start=datetime(2026, 11, 29, 0, 0, tzinfo=UTC))
    at = datetime(2026, 11, 29, tzinfo=UTC)
    assert fleet.rate(task, at.replace(hour=14)) == pytest.approx(15.0)
    assert fleet.rate(task, at.replace(hour=2)) == pytest.approx(5.0)
    assert fleet.rate(task, at.replace(hour=8)) == pytest.approx(10.0)
    inside = fleet.rate(task, at + timedelta(hours=1, minutes=2))
    outside = fleet.rate(task, at + timedelta(hours=1, minutes=6))
    assert inside / outside == pytest.approx(4.0, rel=0.01)


def test_ledger_compares_with_default_and_oracle() -> None:
    task = _task(models={BIG: ModelProfile(), SMALL: ModelProfile()})
    fleet = Fleet(Scenario("t", (task,)), start=T0, seed=6)
    small = AppConfig(app="shop", version=2, tasks={"classify": TaskConfig(model=SMALL)})
    fleet.calls(T0, T0 + timedelta(minutes=1), {})
    fleet.calls(T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), {"shop": small})
    ledger = fleet.ledgers[("shop", "classify")]
    per_big = fleet.expected_cost(task, BIG, ModelProfile())
    per_small = fleet.expected_cost(task, SMALL, ModelProfile())
    assert ledger.default_usd == pytest.approx(ledger.calls * per_big)
    assert ledger.oracle_usd == pytest.approx(ledger.calls * per_small)
    assert 0 < ledger.savings() < ledger.oracle_savings()
    assert ledger.oracle_savings() == pytest.approx(1 - per_small / per_big)
    assert ledger.quality_change() == 0.0
    assert ledger.baseline_model == SMALL


# -- runs and scenario files ------------------------------------------------------------------


def test_simulation_seeds_configs_and_runs_ticks() -> None:
    source = StaticConfigSource()
    sink = ListSink()
    fleet = Fleet(SCENARIOS["fleet"](), start=T0, seed=7)
    sim = Simulation(fleet, source, sink, tick=timedelta(seconds=15))
    sim.seed_configs()
    assert set(source.configs) == {"search", "support"}
    assert source.configs["support"].tasks["summarize"] == TaskConfig(model=BIG)
    sim.run_for(timedelta(minutes=2))
    assert sim.now == T0 + timedelta(minutes=2)
    assert sim.events == len(sink.events) > 0
    calls = [e for e in sink.events if e.get("kind") != "feedback"]
    assert {e["config_version"] for e in calls} == {1}
    assert any(e.get("kind") == "feedback" for e in sink.events)  # support/classify sends some
    assert max(e["timestamp"] for e in sink.events) < (T0 + timedelta(minutes=2)).timestamp() * 1000


def test_scenario_files_json_and_toml(tmp_path: Path) -> None:
    data = {
        "name": "mine",
        "duration": "90min",
        "seed": 3,
        "tasks": [
            {
                "app": "a",
                "task": "t",
                "model": BIG,
                "rate_per_s": 5,
                "models": {BIG: {"quality_mean": 0.9}, SMALL: {"quality_mean": 0.89}},
                "bursts": [{"at": "10min", "duration": 60, "factor": 2}],
            }
        ],
        "incidents": [{"model": SMALL, "at": "30min", "until": "40min", "latency_factor": 2}],
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    scenario = load_scenario(path)
    assert scenario.name == "mine"
    assert scenario.duration == timedelta(minutes=90)
    assert scenario.tasks[0].models[SMALL].quality_mean == 0.89
    assert scenario.tasks[0].bursts == (Burst(timedelta(minutes=10), timedelta(seconds=60), 2),)
    assert scenario.incidents[0].until == timedelta(minutes=40)
    toml = tmp_path / "s.toml"
    toml.write_text(
        'name = "t"\nduration = 600\n[[tasks]]\napp = "a"\ntask = "t"\nmodel = "m"\n'
        "[tasks.models.m]\nquality_mean = 0.8\n"
    )
    assert load_scenario(toml).tasks[0].models["m"] == ModelProfile(quality_mean=0.8)
    with pytest.raises(ValueError, match="default model"):
        _task(model="nope")
    with pytest.raises(ValueError, match="invalid scenario"):
        load_scenario(_write(tmp_path / "bad.json", {"name": "x"}))


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_feedback_events_follow_their_calls_in_event_time() -> None:
    task = _task(rate_per_s=100.0, feedback_share=0.5, feedback_delay_s=15.0)
    fleet = Fleet(Scenario("t", (task,)), start=T0, seed=8)
    ticks = [
        fleet.calls(T0 + timedelta(seconds=10 * k), T0 + timedelta(seconds=10 * (k + 1)), {})
        for k in range(12)
    ]
    for k, tick in enumerate(ticks):  # each tick holds only events of its own time
        low = (T0 + timedelta(seconds=10 * k)).timestamp() * 1000
        assert all(low <= e["timestamp"] < low + 10_000 for e in tick)
    events = [e for tick in ticks for e in tick]
    calls = {e["request_id"]: e for e in events if e.get("kind") != "feedback"}
    feedback = [e for e in events if e.get("kind") == "feedback"]
    ok = [c for c in calls.values() if c["status"] == "ok"]
    inline = [c for c in ok if "quality" in c]
    assert len(feedback) + len(inline) <= len(ok)
    assert len(feedback) / len(ok) == pytest.approx(0.5, abs=0.05)
    for fb in feedback:
        call = calls[fb["request_id"]]
        assert "quality" not in call
        assert 1000 <= fb["timestamp"] - call["timestamp"] <= 15_000
        assert (fb["app"], fb["task"]) == ("shop", "classify")


def test_the_example_scenario_file_loads() -> None:
    path = Path(__file__).parents[3] / "simulator" / "example-scenario.toml"
    scenario = load_scenario(path)
    assert [(t.app, t.task) for t in scenario.tasks] == [
        ("helpdesk", "triage"),
        ("helpdesk", "summarize"),
    ]
    triage = scenario.tasks[0]
    fleet = Fleet(scenario, start=T0)
    assert fleet.oracle(triage, T0) == SMALL  # nano is cheaper but misses the quality SLO
    assert fleet.oracle(triage, T0 + timedelta(hours=2, minutes=10)) == BIG  # incident
    assert fleet.oracle(triage, T0 + timedelta(hours=2, minutes=40)) == SMALL


def test_a_cache_config_answers_repeats_within_its_ttl() -> None:
    from core.app_config import CacheConfig

    task = _task(rate_per_s=50.0, repeat_ratio=0.5, distinct_prompts=5)
    fleet = Fleet(Scenario("t", (task,)), start=T0, seed=9)
    cached = AppConfig(
        app="shop",
        version=2,
        tasks={"classify": TaskConfig(model=BIG, cache=CacheConfig(ttl_s=60.0))},
    )
    events = [
        e
        for k in range(12)
        for e in fleet.calls(
            T0 + timedelta(seconds=10 * k), T0 + timedelta(seconds=10 * (k + 1)), {"shop": cached}
        )
    ]
    hits = [e for e in events if (e.get("attributes") or {}).get("cache_hit")]
    repeats = [e for e in events if e["prompt_hash"].startswith("p-")]
    assert all(e["prompt_hash"].startswith("p-") for e in hits)
    # 5 prompts, a 60 s TTL over 120 s: at most 5 · 2 misses (plus failed answers) per prompt set
    assert len(repeats) - 10 - 5 <= len(hits) < len(repeats)
    assert all(e["cost_usd"] == 0.0 and e["latency_ms"] <= 10 and e["status"] == "ok" for e in hits)
    assert all(e["input_tokens"] == 0 and "ttft_ms" not in e for e in hits)
    ledger = fleet.ledgers[("shop", "classify")]
    assert ledger.cache_hits == len(hits)
    assert ledger.savings() == pytest.approx(len(hits) / len(events), abs=0.02)
    plain = Fleet(Scenario("t", (task,)), start=T0, seed=9)
    assert not any(
        (e.get("attributes") or {}).get("cache_hit")
        for e in plain.calls(T0, T0 + timedelta(minutes=2), {})
    )
