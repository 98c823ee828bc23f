"""Prompt rewrites: a prompt decision that asks for a shorter template waits for one.

The dataflow never calls an outside service, so the actuator stores such a decision as
``proposed`` with its rewrite request marked *pending*; the integrations service asks the
Anthropic client for a shorter template and calls :func:`apply_rewrite`, which puts the new
template into the decision and starts it as a canary like any other. When no rewrite can be had
(the model dropped a placeholder, or the call keeps failing), :func:`skip_rewrite` starts the
rest of the decision (e.g. provider prompt caching) and records why.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.orm import Session

from core.decisions import Decision, Deployment
from core.settings import CanarySettings
from operators.strategies import REWRITE_KEY
from rollout.canary_controller import config_overrides, start_canary
from storage.configs import active_config
from storage.decisions import list_decisions, revise_decision

__all__ = [
    "REWRITE_PENDING",
    "apply_rewrite",
    "current_template",
    "mark_pending",
    "pending_rewrites",
    "placeholders",
    "skip_rewrite",
]

REWRITE_PENDING = "pending"
_PLACEHOLDER = re.compile(r"\{[^{}\s]+\}")


def placeholders(template: str) -> tuple[str, ...]:
    """The ``{name}`` placeholders a rewrite must keep verbatim."""
    return tuple(dict.fromkeys(_PLACEHOLDER.findall(template)))


def current_template(session: Session, decision: Decision) -> str | None:
    """The task's active prompt template, if the config has one."""
    config = active_config(session, decision.app)
    task = config.tasks.get(decision.task) if config is not None else None
    if task is None or task.prompt is None:
        return None
    return task.prompt.template


def pending_rewrites(session: Session, limit: int = 20) -> list[Decision]:
    """Proposed prompt decisions whose rewrite is pending, oldest first."""
    page = list_decisions(
        session, strategy="prompt_optimization", status=["proposed"], limit=10_000
    )
    found = [d for d in page.items if d.action.get(REWRITE_KEY) == REWRITE_PENDING]
    return list(reversed(found))[:limit]


def _start(
    session: Session,
    decision: Decision,
    action: dict[str, Any],
    evidence: dict[str, Any],
    settings: CanarySettings,
    now: datetime,
) -> Deployment:
    revised = revise_decision(session, decision.id, action=action, evidence=evidence, now=now)
    return start_canary(session, revised, settings=settings, now=now)


def apply_rewrite(
    session: Session,
    decision: Decision,
    *,
    template: str,
    rewritten: str,
    cost: dict[str, Any],
    settings: CanarySettings,
    now: datetime,
) -> Deployment:
    """Start ``decision`` as a canary that serves ``rewritten`` instead of ``template``."""
    action = config_overrides(decision.action)
    prompt = dict(action.get("prompt") or {})
    prompt["template"] = rewritten
    action["prompt"] = prompt
    evidence = {
        **decision.evidence,
        "rewrite": "done",
        "template_chars": len(template),
        "rewritten_chars": len(rewritten),
        **{f"rewrite_{k}": v for k, v in cost.items()},
    }
    return _start(session, decision, action, evidence, settings, now)


def skip_rewrite(
    session: Session, decision: Decision, *, reason: str, settings: CanarySettings, now: datetime
) -> Deployment | None:
    """Start the rest of ``decision`` without a rewrite; ``None`` when nothing is left."""
    action = config_overrides(decision.action)
    evidence = {**decision.evidence, "rewrite": f"skipped: {reason}"}
    if not action:
        revise_decision(session, decision.id, action=action, evidence=evidence, now=now)
        return None
    return _start(session, decision, action, evidence, settings, now)


def mark_pending(decision: Decision) -> Decision:
    """``decision`` with its rewrite request marked pending (what the actuator stores)."""
    return msgspec.structs.replace(
        decision, action={**decision.action, REWRITE_KEY: REWRITE_PENDING}
    )
