"""Routing rules and the routing facts of each event type."""

from __future__ import annotations

import pytest

from core.settings import DEFAULT_ROUTES, RouteRule
from integrations.messages import EventFacts, event_facts
from integrations.routing import Router, rule_matches

DECISION = {"id": "d", "app": "bot", "task": "t", "strategy": "caching"}
F = EventFacts


@pytest.mark.parametrize(
    ("event_type", "payload", "facts"),
    [
        (
            "critical_insight",
            {"insight": {"app": "a", "severity": "critical"}},
            F("critical_insight", "critical", "a", None),
        ),
        (
            "insight",
            {"app": "a", "severity": "warning"},
            F("insight", "warning", "a", None),
        ),
        (
            "verdict",
            {"verdict": {"outcome": "fail", "app": "a"}, "decision": DECISION},
            F("verdict", "warning", "a", "caching"),
        ),
        (
            "verdict",
            {"verdict": {"outcome": "pass"}, "decision": DECISION},
            F("verdict", "info", "bot", "caching"),
        ),
        (
            "rollback",
            {"decision": DECISION},
            F("rollback", "critical", "bot", "caching"),
        ),
        (
            "approval_needed",
            {"decision": DECISION},
            F("approval_needed", "warning", "bot", "caching"),
        ),
        ("decision", DECISION, F("decision", "info", "bot", "caching")),
    ],
)
def test_event_facts(event_type: str, payload: dict[str, object], facts: EventFacts) -> None:
    assert event_facts(event_type, payload) == facts


def test_default_routes() -> None:
    router = Router(DEFAULT_ROUTES)
    assert router.targets(F("critical_insight", "critical", "a", None)) == ("slack",)
    assert router.targets(F("rollback", "critical", "a", "caching")) == ("slack",)
    assert router.targets(F("approval_needed", "warning", "a", "caching")) == (
        "jira",
        "github",
    )
    assert router.targets(F("decision", "info", "a", "caching")) == ("jira", "github")
    assert router.targets(F("insight", "warning", "a", None)) == ()


def test_rules_filter_by_event_severity_app_and_strategy() -> None:
    rule = RouteRule(
        targets=("jira",),
        events=("rollback", "verdict"),
        min_severity="warning",
        apps=("bot",),
        strategies=("model_selection",),
    )
    base = F("rollback", "critical", "bot", "model_selection")
    assert rule_matches(rule, base)
    assert not rule_matches(rule, F("decision", "critical", "bot", "model_selection"))
    assert not rule_matches(rule, F("verdict", "info", "bot", "model_selection"))
    assert rule_matches(rule, F("verdict", "warning", "bot", "model_selection"))
    assert not rule_matches(rule, F("rollback", "critical", "other", "model_selection"))
    assert not rule_matches(rule, F("rollback", "critical", "bot", "caching"))
    assert not rule_matches(rule, F("rollback", "critical", "bot", None))
    assert rule_matches(RouteRule(targets=("slack",)), F("insight", "info", None, None))


def test_targets_unite_in_order_and_keep_only_configured_ones() -> None:
    rules = (
        RouteRule(targets=("github", "slack"), min_severity="critical"),
        RouteRule(targets=("slack", "jira"), apps=("a",)),
    )
    facts = F("rollback", "critical", "a", "caching")
    assert Router(rules).targets(facts) == ("github", "slack", "jira")
    assert Router(rules, available={"slack", "jira"}).targets(facts) == ("slack", "jira")
    assert Router(rules).targets(F("rollback", "warning", "b", None)) == ()
