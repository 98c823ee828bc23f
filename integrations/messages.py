"""What each outbox event says: its routing facts and its :class:`Notification`.

Payloads (what the actuator enqueues; each part may also be given flat):

- ``critical_insight`` / ``insight``: ``{"insight": Insight}`` (CONTRACT.md §3)
- ``verdict``: ``{"verdict": {...}, "decision": Decision?}``
- ``rollback``: ``{"decision": Decision, "verdict": {...}?, "reason": str?}``
- ``approval_needed`` / ``decision``: ``{"decision": Decision}``
- ``decision_approved`` / ``decision_rejected``: ``{"decision": Decision, "actor": str?,
  "comment": str?}``

A verdict is read leniently: ``outcome`` (or ``result``/``status``), ``stage``, ``app``,
``task``, ``deployment_id``, and ``metrics`` as ``[{name, baseline, canary, threshold,
p_value, passed}]`` (or a mapping name → those).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from integrations.notifier import Notification, Severity

__all__ = ["EventFacts", "build_notification", "decision_id", "event_facts", "subject_id"]

_SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
_MAX_FIELDS = 20


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What routing looks at: the event type, its severity, app and strategy."""

    event_type: str
    severity: Severity
    app: str | None
    strategy: str | None


def _part(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name)
    return value if isinstance(value, Mapping) else payload


def _severity(value: Any, default: Severity) -> Severity:
    return value if value in _SEVERITIES else default


def _outcome(verdict: Mapping[str, Any]) -> str:
    return str(verdict.get("outcome") or verdict.get("result") or verdict.get("status") or "")


def event_facts(event_type: str, payload: Mapping[str, Any]) -> EventFacts:
    """The routing facts of an event.

    Args:
        event_type: The outbox row's event type.
        payload: Its payload.

    Returns:
        Severity: the insight's own; ``critical`` for rollbacks; ``warning`` for failed
        verdicts and approvals; ``info`` otherwise.
    """
    decision = _part(payload, "decision")
    strategy = decision.get("strategy") if event_type != "insight" else None
    if event_type in ("critical_insight", "insight"):
        insight = _part(payload, "insight")
        default: Severity = "critical" if event_type == "critical_insight" else "info"
        return EventFacts(
            event_type, _severity(insight.get("severity"), default), insight.get("app"), None
        )
    if event_type == "verdict":
        verdict = _part(payload, "verdict")
        failed = _outcome(verdict) in ("fail", "failed", "rollback", "rolled_back")
        app = verdict.get("app") or decision.get("app")
        return EventFacts(event_type, "warning" if failed else "info", app, strategy)
    severity: Severity = {"rollback": "critical", "approval_needed": "warning"}.get(
        event_type, "info"
    )  # type: ignore[assignment]
    return EventFacts(event_type, severity, decision.get("app"), strategy)


def subject_id(event_type: str, payload: Mapping[str, Any]) -> str:
    """The id of what the event is about (insight, verdict or decision id; empty if none)."""
    name = {"critical_insight": "insight", "insight": "insight", "verdict": "verdict"}.get(
        event_type, "decision"
    )
    return str(_part(payload, name).get("id") or "")


def decision_id(event_type: str, payload: Mapping[str, Any]) -> str:
    """The decision an event is about (``decision_id``, or the decision's ``id``; empty if none)."""
    if event_type in ("critical_insight", "insight"):
        return ""
    if payload.get("decision_id"):
        return str(payload["decision_id"])
    decision = _part(payload, "decision")
    if event_type == "verdict" and decision is payload:
        return ""
    return str(decision.get("id") or "")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def _fields(items: Mapping[str, Any]) -> dict[str, str]:
    out = {str(k): _fmt(v) for k, v in items.items() if v is not None and v != ""}
    return dict(list(out.items())[:_MAX_FIELDS])


def _verdict_fields(verdict: Mapping[str, Any]) -> dict[str, str]:
    metrics = verdict.get("checks") or verdict.get("metrics") or {}
    if isinstance(metrics, Mapping):
        metrics = [{"name": k, **v} for k, v in metrics.items() if isinstance(v, Mapping)]
    out: dict[str, str] = {}
    for m in metrics:
        if not isinstance(m, Mapping):
            continue
        parts = [
            f"{label} {_fmt(m[key])}"
            for key, label in (
                ("baseline", "baseline"),
                ("canary", "canary"),
                ("threshold", "threshold"),
                ("p_value", "p"),
            )
            if m.get(key) is not None
        ]
        passed = m.get("passed")
        mark = "✅ " if passed is True else "❌ " if passed is False else ""
        out[str(m.get("metric") or m.get("name") or "?")] = mark + ", ".join(parts)
    return dict(list(out.items())[:_MAX_FIELDS])


def _link(base: str, path: str) -> str | None:
    return f"{base.rstrip('/')}{path}" if base else None


def build_notification(
    event_type: str, key: str, payload: Mapping[str, Any], *, link_base: str = ""
) -> Notification:
    """The message an event becomes (each client renders it: Block Kit, ADF, markdown).

    Args:
        event_type: The outbox row's event type.
        key: The row's idempotency key.
        payload: The row's payload.
        link_base: Base URL of "open details" links (empty: none).

    Returns:
        The notification.
    """
    facts = event_facts(event_type, payload)
    decision = _part(payload, "decision")
    where = "/".join(str(x) for x in (decision.get("app"), decision.get("task")) if x)
    d_link = _link(link_base, f"/api/v1/optimize/{decision_id(event_type, payload)}")
    common = {"key": key, "severity": facts.severity, "app": facts.app}
    if event_type in ("critical_insight", "insight"):
        i = _part(payload, "insight")
        return Notification(
            title=f"{i.get('analyzer', 'insight')}: {i.get('kind', '')} in {i.get('app')}/"
            f"{i.get('task', '')}",
            text=str(i.get("message", "")),
            fields=_fields(
                {
                    "metric": i.get("metric"),
                    "value": i.get("value"),
                    "baseline": i.get("baseline"),
                    "score": i.get("score"),
                    "window": f"{i.get('window_start', '')} to {i.get('window_end', '')}",
                    **(i.get("evidence") or {}),
                }
            ),
            link=_link(link_base, f"/api/v1/metrics/insights?app={i.get('app', '')}"),
            **common,  # type: ignore[arg-type]
        )
    if event_type == "verdict":
        v = _part(payload, "verdict")
        app, task = v.get("app") or decision.get("app"), v.get("task") or decision.get("task")
        return Notification(
            title=f"Canary verdict for {app}/{task}: {_outcome(v) or 'unknown'}",
            text=str(v.get("reason") or v.get("summary") or ""),
            fields={"stage": _fmt(v.get("stage", "")), **_verdict_fields(v)},
            link=_link(link_base, f"/api/v1/deployments/{v.get('deployment_id', '')}"),
            **common,  # type: ignore[arg-type]
        )
    strategy = decision.get("strategy") or payload.get("strategy") or "change"
    titles = {
        "rollback": f"Rolled back {strategy} on {where}",
        "approval_needed": f"Approval needed: {strategy} on {where}",
        "decision_approved": f"Approved: {strategy} on {where}",
        "decision_rejected": f"Rejected: {strategy} on {where}",
    }
    text = str(payload.get("reason") or decision.get("rationale") or "")
    extra: dict[str, Any] = {"by": payload.get("actor"), "comment": payload.get("comment")}
    fields = _fields(
        {
            **extra,
            "decision": decision_id(event_type, payload),
            "deployment": payload.get("deployment_id"),
            "status": decision.get("status"),
            "confidence": decision.get("confidence"),
            **(decision.get("expected_impact") or {}),
            "action": decision.get("action"),
        }
    )
    if event_type == "rollback":
        fields.update(_verdict_fields(_part(payload, "verdict")) if "verdict" in payload else {})
    if event_type == "decision" and decision.get("status") == "canary":
        titles["decision"] = f"Canary started: {strategy} on {where}"
    return Notification(
        title=titles.get(event_type, f"Decision: {strategy} on {where}"),
        text=text,
        fields=fields,
        link=d_link,
        **common,  # type: ignore[arg-type]
    )
