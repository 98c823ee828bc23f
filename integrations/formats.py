"""A :class:`~integrations.notifier.Notification` as Jira ADF or GitHub markdown.

Slack's Block Kit lives with its client (:func:`integrations.slack.build_slack_message`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from integrations.notifier import Notification

__all__ = ["build_adf", "build_markdown", "issue_label", "one_line"]

_SEVERITY_MARK = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}  # noqa: RUF001


def one_line(text: str, limit: int) -> str:
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def issue_label(key: str) -> str:
    """A label that finds the issue opened for the idempotency key ``key`` (no spaces, short).

    Args:
        key: The event's idempotency key.

    Returns:
        ``llmopt-`` and 16 hex digits of the key's SHA-256.
    """
    return "llmopt-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _text(value: str, *marks: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def _paragraph(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": [n for n in nodes if n["text"]]}


def build_adf(n: Notification) -> dict[str, Any]:
    """Render a notification as an Atlassian Document Format document (Jira v3 descriptions).

    Paragraphs for the text (one per line), a bullet list of the fields (name in bold), a link,
    and a closing line with the app and the idempotency key. ADF refuses empty text nodes, so
    none is emitted.

    Args:
        n: The notification.

    Returns:
        ``{"type": "doc", "version": 1, "content": [...]}``.
    """
    content: list[dict[str, Any]] = []
    for line in n.text.splitlines():
        if line.strip():
            content.append(_paragraph(_text(line)))
    if n.fields:
        items = [
            {
                "type": "listItem",
                "content": [
                    _paragraph(_text(f"{name}: ", {"type": "strong"}), _text(value or "—"))
                ],
            }
            for name, value in n.fields.items()
        ]
        content.append({"type": "bulletList", "content": items})
    if n.link:
        content.append(
            _paragraph(_text("Open details", {"type": "link", "attrs": {"href": n.link}}))
        )
    footer = f"severity: {n.severity}" + (f" · app: {n.app}" if n.app else "")
    content.append(
        _paragraph(_text(footer + " · key: "), _text(n.key, {"type": "code"})),
    )
    return {"type": "doc", "version": 1, "content": content}


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def build_markdown(n: Notification) -> str:
    """Render a notification as GitHub-flavoured markdown (issue and comment bodies).

    Args:
        n: The notification.

    Returns:
        The text, a table of the fields, the link and a footer with the app and the key.
    """
    parts = [f"{_SEVERITY_MARK[n.severity]} **{n.severity}**", ""]
    if n.text:
        parts += [n.text, ""]
    if n.fields:
        parts += ["| metric | value |", "|---|---|"]
        parts += [f"| {_md_escape(k)} | {_md_escape(v)} |" for k, v in n.fields.items()]
        parts.append("")
    if n.link:
        parts += [f"[Open details]({n.link})", ""]
    footer = f"app: `{n.app}` · " if n.app else ""
    parts.append(f"<sub>{footer}key: `{n.key}`</sub>")
    return "\n".join(parts)
