"""Dispatcher: outbox rows → Slack/Jira/GitHub over real local servers; at least once, by key."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.settings import DEFAULT_ROUTES, RouteRule
from integrations import GitHubClient, JiraClient, SlackWebhook
from integrations.dispatcher import Dispatcher, DispatchReport
from integrations.outbox import PARK_FOR, outbox_key
from integrations.routing import Router

from .conftest import OkSlack
from .fakes import (
    GITHUB_REPO,
    GITHUB_TOKEN,
    JIRA_EMAIL,
    JIRA_PROJECT,
    JIRA_TOKEN,
    FakeGitHub,
    FakeJira,
    RecordingSleep,
    Reply,
    json_reply,
    options,
)
from .memory_outbox import MemoryOutbox

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
INSIGHT = {
    "id": "ins-1",
    "app": "billing-bot",
    "task": "classify",
    "analyzer": "performance",
    "kind": "latency_slo",
    "severity": "critical",
    "window_start": "2026-11-29T11:00:00Z",
    "window_end": "2026-11-29T11:01:00Z",
    "metric": "latency_p95_ms",
    "value": 6200.0,
    "baseline": 900.0,
    "score": 6.9,
    "message": "p95 6200 ms over the 5000 ms SLO",
    "evidence": {"threshold_ms": 5000.0},
}
DECISION = {
    "id": "dec-7",
    "app": "billing-bot",
    "task": "classify",
    "strategy": "model_selection",
    "action": {"model": "claude-haiku-4-5"},
    "rationale": "Quality not worse by more than 0.02; cost -62 %.",
    "expected_impact": {
        "cost_change_pct": -62.0,
        "latency_change_pct": -10.0,
        "quality_change": -0.01,
    },
    "confidence": 0.93,
    "status": "proposed",
}


class World:
    def __init__(
        self,
        slack: OkSlack,
        jira: FakeJira | None = None,
        github: FakeGitHub | None = None,
        routes: tuple[RouteRule, ...] = DEFAULT_ROUTES,
        max_attempts: int = 10,
    ) -> None:
        self.outbox = MemoryOutbox()
        self.slack, self.jira, self.github = slack, jira, github
        self.now = NOW
        self.routes = routes
        self.max_attempts = max_attempts

    def add(self, event_type: str, subject: str, payload: dict[str, Any]) -> str:
        key = outbox_key(event_type, subject)
        self.outbox.enqueue(key, event_type, payload, self.now)
        return key

    def run(self) -> DispatchReport:
        async def go() -> DispatchReport:
            sleep = RecordingSleep()
            notifiers = {
                "slack": SlackWebhook(self.slack.url(), sleep=sleep, rng=lambda: 0.5, attempts=2)
            }
            trackers: dict[str, Any] = {}
            if self.jira:
                trackers["jira"] = JiraClient(
                    self.jira.base_url,
                    JIRA_EMAIL,
                    JIRA_TOKEN,
                    JIRA_PROJECT,
                    options=options(sleep, attempts=2),
                )
            if self.github:
                trackers["github"] = GitHubClient(
                    GITHUB_TOKEN,
                    GITHUB_REPO,
                    base_url=self.github.base_url,
                    options=options(sleep, attempts=2),
                )
            dispatcher = Dispatcher(
                self.outbox,
                Router(self.routes, {"slack", *trackers}),
                notifiers=notifiers,
                trackers=trackers,
                link_base="https://opt.example",
                max_attempts=self.max_attempts,
                now=lambda: self.now,
                rng=lambda: 0.5,
            )
            try:
                return await dispatcher.run_once(limit=10)
            finally:
                for client in [*notifiers.values(), *trackers.values()]:
                    await client.close()

        return asyncio.run(go())

    def due_again(self, key: str) -> None:
        """Make a row due again, as an operator's retry or a lost acknowledgement would."""
        row = self.outbox.by_key(key)
        self.outbox.rows[row.id] = replace(row, status="failed", next_attempt_at=self.now)


def test_critical_insight_goes_to_slack_once(ok_slack: OkSlack) -> None:
    w = World(ok_slack)
    key = w.add("critical_insight", "ins-1", {"insight": INSIGHT})
    assert not w.outbox.enqueue(key, "critical_insight", {"insight": INSIGHT}, NOW)  # by key
    assert w.run() == DispatchReport(delivered=1)
    [request] = ok_slack.requests
    message = request.json()
    assert message["blocks"][0]["text"]["text"] == (
        ":rotating_light: performance: latency_slo in billing-bot/classify"
    )
    assert "key: `critical_insight:ins-1`" in message["blocks"][-1]["elements"][1]["text"]
    row = w.outbox.by_key(key)
    assert (row.status, row.attempts, row.delivered_at) == ("delivered", 1, NOW)
    assert row.result == {
        "targets": {"slack": {"ok": True, "at": NOW.isoformat(), "status": 200}},
        "routed": ["slack"],
    }
    w.due_again(key)  # a replay of a delivered key
    assert w.run() == DispatchReport(delivered=1)
    assert len(ok_slack.requests) == 1  # not re-sent


def test_failure_keeps_the_error_and_the_next_attempt(ok_slack: OkSlack) -> None:
    w = World(ok_slack)
    ok_slack.script(Reply(500, "internal_error"), Reply(503, "service_unavailable"))
    key = w.add("rollback", "dec-7", {"decision": DECISION, "reason": "p95 over the gate"})
    assert w.run() == DispatchReport(failed=1)
    row = w.outbox.by_key(key)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "slack: service_unavailable")
    assert row.next_attempt_at == NOW + timedelta(seconds=22.5)  # 30 s * (0.5 + 0.5 * 0.5)
    assert row.result["targets"]["slack"] == {
        "ok": False,
        "error": "service_unavailable",
        "status": 503,
    }
    assert w.run() == DispatchReport()  # not due yet
    w.now = row.next_attempt_at
    assert w.run() == DispatchReport(delivered=1)
    assert len(ok_slack.requests) == 3
    assert w.outbox.by_key(key).attempts == 2


def test_retry_after_beyond_the_client_limit_sets_the_next_attempt(ok_slack: OkSlack) -> None:
    w = World(ok_slack)
    ok_slack.script(Reply(429, "rate_limited", {"Retry-After": "300"}))
    key = w.add("verdict", "v-1", {"verdict": {"outcome": "fail", "app": "a", "task": "t"}})
    w.run()
    assert w.outbox.by_key(key).next_attempt_at == NOW + timedelta(seconds=300)


def test_permanent_refusal_and_max_attempts_park_the_row(ok_slack: OkSlack) -> None:
    w = World(ok_slack, max_attempts=2)
    ok_slack.script(Reply(404, "no_service"))
    parked = w.add("rollback", "dec-1", {"decision": DECISION})
    assert w.run() == DispatchReport(parked=1)
    row = w.outbox.by_key(parked)
    assert (row.status, row.last_error, row.result["parked"]) == (
        "failed",
        "slack: no_service",
        True,
    )
    assert row.next_attempt_at == NOW + PARK_FOR
    ok_slack.script(*[Reply(500, "internal_error")] * 4)
    key = w.add("rollback", "dec-2", {"decision": DECISION})
    assert w.run() == DispatchReport(failed=1)
    w.now += timedelta(hours=1)
    assert w.run() == DispatchReport(parked=1)
    assert w.outbox.by_key(key).attempts == 2


def test_partial_failure_retries_only_the_failed_target(
    ok_slack: OkSlack, jira_server: FakeJira
) -> None:
    routes = (RouteRule(targets=("slack", "jira"), events=("approval_needed",)),)
    w = World(ok_slack, jira=jira_server, routes=routes)
    jira_server.script(*[Reply(502, "Bad Gateway")] * 2)
    key = w.add("approval_needed", "dec-7", {"decision": DECISION})
    assert w.run() == DispatchReport(failed=1)
    assert w.outbox.by_key(key).last_error == "jira: Bad Gateway"
    w.now += timedelta(minutes=5)
    assert w.run() == DispatchReport(delivered=1)
    assert len(ok_slack.requests) == 1  # Slack got it the first time only
    targets = w.outbox.by_key(key).result["targets"]
    assert targets["jira"]["issue"] == "OPS-1"
    assert list(jira_server.issues) == ["OPS-1"]


def test_approval_opens_issues_and_the_verdict_comments_on_them(
    ok_slack: OkSlack, jira_server: FakeJira, github_server: FakeGitHub
) -> None:
    w = World(ok_slack, jira=jira_server, github=github_server)
    approved = w.add("decision_approved", "dec-7", {"decision": DECISION, "actor": "ops@acme"})
    # no approval row at all: nothing to comment on
    assert w.run() == DispatchReport(delivered=1)
    assert (
        w.outbox.by_key(approved).result["targets"]["jira"]["skipped"]
        == "no issue for the decision"
    )

    w.add("approval_needed", "dec-8", {"decision": {**DECISION, "id": "dec-8"}})
    rejected = w.add(
        "decision_rejected",
        "dec-8",
        {"decision": {**DECISION, "id": "dec-8"}, "actor": "ops@acme", "comment": "too risky"},
    )
    assert w.run() == DispatchReport(delivered=2)
    assert list(jira_server.issues) == ["OPS-1"]
    assert len(github_server.issues) == 1
    issue = jira_server.issues["OPS-1"]["fields"]
    assert issue["summary"] == "Approval needed: model_selection on billing-bot/classify"
    [jira_comment] = jira_server.comments["OPS-1"]
    assert jira_comment["body"]["content"][0]["content"][0]["text"] == (
        "Rejected: model_selection on billing-bot/classify"
    )
    [gh_comment] = github_server.comments[1]
    assert "| by | ops@acme |" in gh_comment["body"]
    assert "| comment | too risky |" in gh_comment["body"]
    result = w.outbox.by_key(rejected).result["targets"]
    assert (result["jira"]["issue"], result["github"]["issue"]) == ("OPS-1", "1")
    assert len(ok_slack.requests) == 0  # approvals are not routed to Slack by default


def test_follow_up_waits_for_its_issue(ok_slack: OkSlack, jira_server: FakeJira) -> None:
    routes = (RouteRule(targets=("jira",), events=("approval_needed", "decision_approved")),)
    w = World(ok_slack, jira=jira_server, routes=routes)
    jira_server.script(Reply(503, "down"), Reply(503, "down"))  # the approval's issue fails once
    w.add("approval_needed", "dec-7", {"decision": DECISION})
    approved = w.add("decision_approved", "dec-7", {"decision": DECISION})
    assert w.run() == DispatchReport(failed=2)
    assert w.outbox.by_key(approved).last_error == "jira: issue not opened yet"
    w.now += timedelta(minutes=2)
    assert w.run() == DispatchReport(delivered=2)
    assert len(jira_server.comments["OPS-1"]) == 1


def test_a_lost_acknowledgement_does_not_open_a_second_issue(
    ok_slack: OkSlack, github_server: FakeGitHub
) -> None:
    w = World(ok_slack, github=github_server)
    key = w.add("approval_needed", "dec-7", {"decision": DECISION})
    w.run()
    row = w.outbox.by_key(key)
    w.outbox.rows[row.id] = replace(row, status="pending", result={}, next_attempt_at=w.now)
    assert w.run() == DispatchReport(delivered=1)
    assert len(github_server.issues) == 1
    assert w.outbox.by_key(key).result["targets"]["github"]["issue"] == "1"


def test_unrouted_events_are_marked_delivered_with_nothing_sent(ok_slack: OkSlack) -> None:
    w = World(ok_slack)
    key = w.add("decision", "dec-7", {"decision": DECISION})
    assert w.run() == DispatchReport(delivered=1)
    assert w.outbox.by_key(key).result == {"targets": {}, "routed": []}
    assert ok_slack.requests == []


def test_json_payload_from_storage_round_trip(ok_slack: OkSlack) -> None:
    w = World(ok_slack)
    ok_slack.script(json_reply(200, {}))
    w.add(
        "verdict",
        "v-2",
        {
            "verdict": {
                "outcome": "pass",
                "app": "a",
                "task": "t",
                "stage": 2,
                "metrics": {
                    "latency_p95_ms": {
                        "baseline": 900.0,
                        "canary": 850.0,
                        "threshold": 1000.0,
                        "p_value": 0.2,
                        "passed": True,
                    }
                },
            }
        },
    )
    assert w.run() == DispatchReport(delivered=1)
    fields = ok_slack.requests[0].json()["blocks"][2]["fields"]
    assert (
        fields[1]["text"] == "*latency_p95_ms*\n✅ baseline 900, canary 850, threshold 1000, p 0.2"
    )


def test_actuator_shaped_rows_comment_on_the_approval_issue(
    ok_slack: OkSlack, jira_server: FakeJira
) -> None:
    """Keys and payloads as sinks/actuator.py and rollout/canary_controller.py write them."""
    w = World(ok_slack, jira=jira_server)
    w.outbox.enqueue("approval:dec-7", "approval_needed", dict(DECISION), NOW)
    w.outbox.enqueue(
        "canary:dep-1", "decision", {**DECISION, "status": "canary", "deployment_id": "dep-1"}, NOW
    )
    w.outbox.enqueue(
        "canary:dep-2", "decision", {**DECISION, "id": "dec-99", "status": "canary"}, NOW
    )  # a decision that never needed approval: nothing for Jira
    w.outbox.enqueue(
        "reject:dec-7",
        "decision_rejected",
        {
            "decision_id": "dec-7",
            "app": "billing-bot",
            "task": "classify",
            "strategy": "model_selection",
            "actor": "ops@acme",
            "reason": "too risky",
        },
        NOW,
    )
    assert w.run() == DispatchReport(delivered=4)
    assert list(jira_server.issues) == ["OPS-1"]
    titles = [c["body"]["content"][0]["content"][0]["text"] for c in jira_server.comments["OPS-1"]]
    assert titles == [
        "Canary started: model_selection on billing-bot/classify",
        "Rejected: model_selection on billing-bot/classify",
    ]
    skipped = w.outbox.by_key("canary:dep-2").result["targets"]["jira"]
    assert skipped["skipped"] == "no issue for the decision"


def test_judge_verdict_checks_become_fields(ok_slack: OkSlack) -> None:
    w = World(ok_slack)
    w.outbox.enqueue(
        "verdict:v-9",
        "verdict",
        {
            "id": "v-9",
            "deployment_id": "dep-1",
            "stage": 1,
            "weight": 0.05,
            "outcome": "fail",
            "reason": "p95 latency over the gate",
            "app": "billing-bot",
            "task": "classify",
            "decision_id": "dec-7",
            "checks": [
                {
                    "metric": "latency_p95_ms",
                    "baseline": 900.0,
                    "canary": 1800.0,
                    "threshold": 1500.0,
                    "test": "gate",
                    "p_value": None,
                    "passed": False,
                }
            ],
        },
        NOW,
    )
    assert w.run() == DispatchReport(delivered=1)
    blocks = ok_slack.requests[0].json()["blocks"]
    assert blocks[0]["text"]["text"] == ":warning: Canary verdict for billing-bot/classify: fail"
    assert blocks[2]["fields"][1]["text"] == (
        "*latency_p95_ms*\n❌ baseline 900, canary 1800, threshold 1500"
    )
