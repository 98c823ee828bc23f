"""Jira Cloud REST v3 client: create an issue (ADF description), add a comment, find by label.

Basic auth with an account email and an API token. Jira answers errors as
``{"errorMessages": [...], "errors": {"field": "message"}}`` (400, 404), 401/403 with a short
body, 429 with ``Retry-After``, 5xx; 429 and 5xx are retried.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx

from core.errors import ConfigurationError
from integrations.circuit_breaker import CircuitBreaker
from integrations.errors import IntegrationError
from integrations.formats import build_adf, issue_label, one_line
from integrations.notifier import Notification
from integrations.redaction import Secret
from integrations.tracker import IssueRef
from integrations.transport import ApiTransport, ClientOptions

__all__ = ["JiraClient", "jira_error"]

_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]{0,254}$")
_SUMMARY_MAX = 255


def jira_error(response: httpx.Response) -> str:
    """Jira's error message: ``errorMessages`` and ``errors`` joined, or the body's first line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        parts = [str(m) for m in body.get("errorMessages") or [] if m]
        errors = body.get("errors") or {}
        if isinstance(errors, dict):
            parts += [f"{k}: {v}" for k, v in errors.items()]
        if not parts and body.get("message"):
            parts.append(str(body["message"]))
        if parts:
            return "; ".join(parts)
    lines = response.text.strip().splitlines()
    return lines[0].strip() if lines else ""


class JiraClient:
    """Opens Jira issues for decisions that need approval and comments on them.

    Implements :class:`~integrations.tracker.IssueTracker`.

    Args:
        base_url: The site, e.g. ``https://example.atlassian.net``.
        email: The account the API token belongs to.
        api_token: The API token (a secret).
        project: The project key issues are created in (``OPS``).
        issue_type: The issue type's name.
        options: Shared client, timeout, retries, breaker and clocks.

    Raises:
        ConfigurationError: A missing credential, a bad project key or base URL.
    """

    name = "jira"

    def __init__(
        self,
        base_url: str,
        email: str,
        api_token: str | Secret,
        project: str,
        *,
        issue_type: str = "Task",
        options: ClientOptions | None = None,
    ) -> None:
        token = api_token.reveal() if isinstance(api_token, Secret) else api_token
        if not email or not token:
            raise ConfigurationError("jira needs an account email and an API token")
        if not _PROJECT.match(project):
            raise ConfigurationError(f"jira project key must look like OPS but it is {project!r}")
        basic = base64.b64encode(f"{email}:{token}".encode()).decode()
        self._project = project
        self._issue_type = issue_type
        self._http = ApiTransport(
            "jira",
            base_url,
            headers={"authorization": Secret(f"Basic {basic}"), "accept": "application/json"},
            secrets=(token, basic),
            error_reader=jira_error,
            options=options,
        )

    def __repr__(self) -> str:
        return f"JiraClient(base_url={self._http.base_url!r}, project={self._project!r})"

    @property
    def breaker(self) -> CircuitBreaker:
        """The client's circuit breaker."""
        return self._http.breaker

    def _ref(self, key: str) -> IssueRef:
        return IssueRef(target="jira", key=key, url=f"{self._http.base_url}/browse/{key}")

    async def create_issue(
        self, summary: str, description: dict[str, Any], *, labels: tuple[str, ...] = ()
    ) -> IssueRef:
        """Create an issue (``POST /rest/api/3/issue``).

        Args:
            summary: One line; cut to Jira's 255 characters.
            description: An ADF document.
            labels: Labels (no spaces).

        Returns:
            The new issue.

        Raises:
            IntegrationError: Jira refused (the reason carries its ``errors``) or did not answer.
        """
        fields: dict[str, Any] = {
            "project": {"key": self._project},
            "summary": one_line(summary, _SUMMARY_MAX),
            "issuetype": {"name": self._issue_type},
            "description": description,
        }
        if labels:
            fields["labels"] = list(labels)
        response = await self._http.request("POST", "/rest/api/3/issue", json={"fields": fields})
        return self._ref(self._read(response, "key"))

    async def add_comment(self, issue_key: str, body: dict[str, Any]) -> str:
        """Comment on an issue (``POST /rest/api/3/issue/{key}/comment``); returns its id."""
        response = await self._http.request(
            "POST", f"/rest/api/3/issue/{issue_key}/comment", json={"body": body}
        )
        return self._read(response, "id")

    async def find_issue(self, label: str) -> IssueRef | None:
        """The first issue of the project carrying ``label`` (``POST /rest/api/3/search/jql``)."""
        jql = f'project = "{self._project}" AND labels = "{label}" ORDER BY created ASC'
        response = await self._http.request(
            "POST",
            "/rest/api/3/search/jql",
            json={"jql": jql, "fields": ["summary"], "maxResults": 1},
        )
        issues = self._json(response).get("issues") or []
        return self._ref(str(issues[0]["key"])) if issues else None

    async def open_issue(self, n: Notification) -> IssueRef:
        """Open an issue for ``n`` unless one carries its key's label already."""
        label = issue_label(n.key)
        found = await self.find_issue(label)
        if found is not None:
            return found
        return await self.create_issue(n.title, build_adf(n), labels=("llmopt", label))

    async def comment(self, issue_key: str, n: Notification) -> str:
        """Comment ``n`` (title in bold, then its ADF body) on ``issue_key``."""
        adf = build_adf(n)
        title = {"type": "text", "text": n.title, "marks": [{"type": "strong"}]}
        adf["content"].insert(0, {"type": "paragraph", "content": [title]})
        return await self.add_comment(issue_key, adf)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise IntegrationError("jira", "invalid_json", attempts=1, status=response.status_code)
        return body

    def _read(self, response: httpx.Response, name: str) -> str:
        value = self._json(response).get(name)
        if value is None:
            raise IntegrationError("jira", f"no {name}", attempts=1, status=response.status_code)
        return str(value)

    async def close(self) -> None:
        """Close the httpx client if the client opened it (idempotent)."""
        await self._http.close()
