"""Every strategy fires from recorded telemetry through ``llmopt backtest``, and only where it pays.

Each case of :mod:`tests.strategy_telemetry` is one app with one task drawn from seeded
distributions (``python -m tests.strategy_telemetry DIR`` writes each to its own file); here the
cases are one recording (apps are independent in the dataflow), run once through the CLI as a
user runs it. The decisions and insights it writes are asserted
whole: which strategy, the action, the evidence, and that the look-alike cases (rare repeats,
no 429s, a task near its latency SLO, a small fixed prompt) get no proposal. The figures the
evidence reports are checked against the recorded events themselves.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from operators.sketch import RELATIVE_ACCURACY
from tests.strategy_telemetry import CASES, START, draw_events

FIRST_END = "2026-03-02T09:01:00Z"  # the end of the first period: every proposal comes here
KEYS = ["model", "params", "system_prompt", "prompt", "tenant"]


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of ``llmopt backtest`` over every case's recording; its decisions and insights."""
    tmp = tmp_path_factory.mktemp("strategies")
    recording = tmp / "recording.jsonl"
    events: dict[str, list[dict[str, Any]]] = {}
    with recording.open("w") as out:
        for case in CASES.values():
            events[case.app] = draw_events(case)
            out.write("".join(json.dumps(e) + "\n" for e in events[case.app]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPT_")}
    env["LLMOPT_DECISIONS__APP_CANDIDATES"] = '@json {"shop": ["gpt-4o-mini"]}'
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "backtest", str(recording), "--out",
         str(tmp / "out")],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {"decisions": _lines(tmp / "out" / "decisions.jsonl"),
            "insights": _lines(tmp / "out" / "insights.jsonl"), "events": events}  # fmt: skip


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _first_period(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    end = START + timedelta(minutes=1)
    return [e for e in events if datetime.fromisoformat(e["timestamp"]) < end]


def _decision(backtest: dict[str, Any], app: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [d for d in backtest["decisions"] if d["app"] == app]
    assert len(found) == 1
    return found[0]


def _insight(backtest: dict[str, Any], app: str, kind: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        i for i in backtest["insights"] if i["app"] == app and i["kind"] == kind
    ]
    assert len(found) == 1
    return found[0]


def test_one_proposal_per_paying_case_and_none_for_the_look_alikes(
    backtest: dict[str, Any],
) -> None:
    decided = [(d["app"], d["task"], d["strategy"], d["status"], d["created_at"])
               for d in backtest["decisions"]]  # fmt: skip
    assert sorted(decided) == [
        ("crawler", "answer", "rate_limiting", "canary", FIRST_END),
        ("faq", "answer", "caching", "canary", FIRST_END),
        ("shop", "answer", "model_selection", "canary", FIRST_END),
        ("support", "answer", "prompt_optimization", "canary", FIRST_END),
        ("tagger", "answer", "batching", "canary", FIRST_END),
    ]
    # the strategies' insights: exactly these, once each (renotify_windows is longer)
    potential = sorted(
        (i["app"], i["kind"], i["window_start"])
        for i in backtest["insights"]
        if i["analyzer"] == "pattern"
    )
    assert potential == [
        ("faq", "cache_potential", "2026-03-02T09:00:00Z"),
        ("shop", "cache_potential", "2026-03-02T09:00:00Z"),
        ("tagger", "batching_potential", "2026-03-02T09:00:00Z"),
    ]
    # the look-alikes raise only what their errors deserve: 3 % timeouts is an error-rate warning
    look_alikes = Counter(
        (i["app"], i["kind"])
        for i in backtest["insights"]
        if i["app"] in ("essays", "reports", "autocomplete")
    )
    assert look_alikes == {("reports", "error_rate"): 12}


def test_caching_from_repeated_prompts(backtest: dict[str, Any]) -> None:
    first = _first_period(backtest["events"]["faq"])
    hashes = Counter(e["prompt_hash"] for e in first)
    repeat_ratio = (len(first) - len(hashes)) / len(first)
    d, found = _decision(backtest, "faq"), _insight(backtest, "faq", "cache_potential")
    assert (found["severity"], found["value"]) == ("info", repeat_ratio)
    assert found["evidence"]["distinct_prompts"] == len(hashes) == 156
    assert d["action"] == {"cache": {"enabled": True, "ttl_s": 127.0, "key_fields": KEYS}}
    ev = d["evidence"]
    assert len(first) == 220
    assert {k: ev[k] for k in ("estimated_hit_rate", "hit_rate_source", "insight_id", "calls",
                               "distinct_prompts", "ttl_s", "traffic_flags")} == {
        "estimated_hit_rate": repeat_ratio, "hit_rate_source": "pattern insight",
        "insight_id": found["id"], "calls": 220, "distinct_prompts": 156, "ttl_s": 127.0,
        "traffic_flags": "unchecked",
    }  # fmt: skip
    # a prompt repeats every W·D/N seconds; the TTL covers 95 % of exponential intervals
    assert ev["mean_repeat_interval_s"] == pytest.approx(60 * 156 / 220)
    assert ev["ttl_raw_s"] == pytest.approx(-math.log(0.05) * 60 * 156 / 220)
    assert d["expected_impact"]["cost_change_pct"] == pytest.approx(-100 * repeat_ratio)


def test_rate_limiting_from_429s_smooths_bursts_without_starving(backtest: dict[str, Any]) -> None:
    first = _first_period(backtest["events"]["crawler"])
    limited = sum(e.get("error_type") == "rate_limited" for e in first)
    d = _decision(backtest, "crawler")
    demand = len(first) / 60
    assert (len(first), limited) == (269, 30)
    assert d["action"] == {
        "rate_limit": {"requests_per_s": 5.38, "tokens_per_min": 207275, "burst": 6}
    }
    assert d["action"]["rate_limit"]["requests_per_s"] == round(demand * 1.2, 3)  # never below
    ev = d["evidence"]
    assert {k: ev[k] for k in ("trigger", "calls", "rate_limited", "rate_per_s",
                               "current_requests_per_s")} == {
        "trigger": "rate_limited", "calls": 269, "rate_limited": 30, "rate_per_s": demand,
        "current_requests_per_s": None,
    }  # fmt: skip
    assert ev["rate_limited_share"] == pytest.approx(30 / 269)


def test_batching_from_many_small_calls_far_from_the_slo(backtest: dict[str, Any]) -> None:
    first = _first_period(backtest["events"]["tagger"])
    peak = max(Counter(datetime.fromisoformat(e["timestamp"]).second for e in first).values())
    d, found = _decision(backtest, "tagger"), _insight(backtest, "tagger", "batching_potential")
    assert found["value"] == peak == 60
    assert d["action"] == {"batching": {"max_batch_size": 3, "max_wait_ms": 50.0}}
    ev = d["evidence"]
    assert {k: ev[k] for k in ("insight_id", "peak_rate_per_s", "max_wait_ms", "max_batch_size",
                               "samples")} == {
        "insight_id": found["id"], "peak_rate_per_s": 60.0, "max_wait_ms": 50.0,
        "max_batch_size": 3, "samples": float(len(first)),
    }  # fmt: skip
    # the period's windows hold more calls than are kept one by one: p95 from the sketch, within
    # its relative accuracy of the exact 333.7425 ms
    assert ev["latency_p95_ms"] == pytest.approx(333.7425, rel=RELATIVE_ACCURACY)
    assert ev["headroom_ms"] == 1000 - ev["latency_p95_ms"]
    # the task near its SLO got neither the insight nor a proposal (checked above); its p95
    near = sorted(e["latency_ms"] for e in _first_period(backtest["events"]["autocomplete"]))
    assert near[int(0.95 * len(near))] > 1000 - 50  # ... leaves less than the 50 ms batch wait


def test_prompt_caching_when_the_fixed_prompt_dominates(backtest: dict[str, Any]) -> None:
    first = _first_period(backtest["events"]["support"])
    fixed = sum(e["prompt_tokens_fixed"] for e in first)
    tokens = sum(e["input_tokens"] for e in first)
    d = _decision(backtest, "support")
    assert d["action"] == {"prompt": {"prompt_cache": True}}
    ev = d["evidence"]
    assert {k: ev[k] for k in ("fixed_prompt_share", "prompt_tokens_fixed", "input_tokens",
                               "model", "input_usd_per_mtok", "cache_read_usd_per_mtok",
                               "calls")} == {
        "fixed_prompt_share": fixed / tokens, "prompt_tokens_fixed": 619200,
        "input_tokens": tokens, "model": "gpt-4o-mini", "input_usd_per_mtok": 0.15,
        "cache_read_usd_per_mtok": 0.075, "calls": len(first),
    }  # fmt: skip
    # the fixed prompt's share of the cost, saved at half price: about 38 %
    saving = ev["fixed_cost_share"] * (1 - 0.075 / 0.15)
    assert d["expected_impact"]["cost_change_pct"] == pytest.approx(-100 * saving)
    assert round(saving, 2) == 0.38


def test_a_cache_and_a_model_switch_on_one_task_start_one_rollout_the_model_first(
    backtest: dict[str, Any],
) -> None:
    """Both pay on ``shop``: the coordinator takes the larger expected saving, one at a time.

    The cache would save its hit rate (33 %), the cheaper model 94 % of the cost: the model
    switch starts as the canary; the cache, proposed every period while it runs, is held back
    (one change in flight per task) and never becomes a second rollout of the task.
    """
    cache = _insight(backtest, "shop", "cache_potential")
    assert cache["evidence"]["estimated_hit_rate"] == pytest.approx(0.3288888888888889)
    (d,) = [d for d in backtest["decisions"] if d["app"] == "shop"]
    assert (d["strategy"], d["action"], d["status"]) == (
        "model_selection", {"model": "gpt-4o-mini", "provider": "openai"}, "canary",
    )  # fmt: skip
    assert d["evidence"]["candidates"]["gpt-4o-mini"]["cost_ratio"] == 0.06
    assert d["created_at"] == FIRST_END  # the same period the cache was first proposed in
