"""Which targets an event goes to, from the ``integrations.routes`` rules in the settings.

A rule matches an event when each of its filters does: ``events`` (event type), ``min_severity``
(the event's severity is at least this), ``apps`` and ``strategies`` (empty: any; an event
without a strategy passes the strategy filter only when it is empty). The targets of every
matching rule are united, in order of first mention, and kept only when configured.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from core.settings import RouteRule
from integrations.messages import EventFacts

__all__ = ["Router", "rule_matches"]

_RANK = {"info": 0, "warning": 1, "critical": 2}


def rule_matches(rule: RouteRule, facts: EventFacts) -> bool:
    """Whether ``rule`` selects the event described by ``facts``."""
    if rule.events and facts.event_type not in rule.events:
        return False
    if _RANK[facts.severity] < _RANK[rule.min_severity]:
        return False
    if rule.apps and facts.app not in rule.apps:
        return False
    return not (rule.strategies and facts.strategy not in rule.strategies)


class Router:
    """Routes events to the configured targets.

    Args:
        rules: The routing rules, in order.
        available: The targets that have a client (credentials set); ``None``: all.
    """

    def __init__(self, rules: Iterable[RouteRule], available: Collection[str] | None = None):
        self.rules = tuple(rules)
        self.available = None if available is None else frozenset(available)

    def targets(self, facts: EventFacts) -> tuple[str, ...]:
        """The targets of an event, without duplicates, in the order the rules name them."""
        out: dict[str, None] = {}
        for rule in self.rules:
            if rule_matches(rule, facts):
                for target in rule.targets:
                    if self.available is None or target in self.available:
                        out[target] = None
        return tuple(out)
