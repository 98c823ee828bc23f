"""GitHub REST client: issues, issue comments, and files through the contents API.

Bearer token, ``Accept: application/vnd.github+json``, ``X-GitHub-Api-Version: 2022-11-28``.
Errors come as ``{"message": ..., "errors": [...], "documentation_url": ...}``. Rate limits answer
403 or 429: with ``retry-after`` (secondary limits) wait that long; with
``x-ratelimit-remaining: 0`` wait until ``x-ratelimit-reset`` (epoch seconds); a 403 that is
neither (nor says "rate limit") is a permission error and final.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from core.errors import ConfigurationError
from integrations.circuit_breaker import CircuitBreaker
from integrations.errors import IntegrationError
from integrations.formats import build_markdown, issue_label, one_line
from integrations.notifier import Notification
from integrations.redaction import Secret
from integrations.retry import is_retryable_status, parse_retry_after
from integrations.tracker import IssueRef
from integrations.transport import ApiTransport, ClientOptions

__all__ = [
    "GITHUB_API_VERSION",
    "FileCommit",
    "GitHubClient",
    "github_error",
    "github_rate_limit_wait",
    "is_github_retryable",
]

GITHUB_API_VERSION = "2022-11-28"
_REPO = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
_TITLE_MAX = 256
_SECONDARY_WAIT = 60.0  # GitHub: without headers, wait at least a minute after a secondary limit


class FileCommit(msgspec.Struct, frozen=True):
    """A file written through the contents API.

    Attributes:
        path: The file's path in the repository.
        sha: The new blob's sha (pass it to update the file again).
        commit: The commit's sha.
        url: The file on github.com.
        created: Whether the file is new (201) rather than updated (200).
    """

    path: str
    sha: str
    commit: str
    url: str
    created: bool


def github_error(response: httpx.Response) -> str:
    """GitHub's ``message`` and each of its ``errors``, or the body's first line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        parts = [str(body["message"])]
        for error in body.get("errors") or []:
            if isinstance(error, dict):
                text = error.get("message") or " ".join(
                    str(error[k]) for k in ("resource", "field", "code") if error.get(k)
                )
                parts.append(str(text))
            else:
                parts.append(str(error))
        return "; ".join(parts)
    lines = response.text.strip().splitlines()
    return lines[0].strip() if lines else ""


def _says_rate_limit(response: httpx.Response) -> bool:
    return response.status_code in (403, 429) and "rate limit" in github_error(response).lower()


def is_github_retryable(response: httpx.Response) -> bool:
    """429, 5xx, and a 403 that is a rate limit (headers or message say so)."""
    status = response.status_code
    if is_retryable_status(status):
        return True
    if status != 403:
        return False
    headers = response.headers
    return (
        "retry-after" in headers
        or headers.get("x-ratelimit-remaining") == "0"
        or _says_rate_limit(response)
    )


def github_rate_limit_wait(response: httpx.Response, now: datetime) -> float | None:
    """Seconds a rate-limited answer asks to wait, ``None`` to use backoff.

    ``retry-after`` first; then, with ``x-ratelimit-remaining: 0``, until ``x-ratelimit-reset``;
    then a minute for a secondary limit without headers.
    """
    headers = response.headers
    after = parse_retry_after(headers.get("retry-after"), now)
    if after is not None:
        return after
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            reset = datetime.fromtimestamp(int(headers["x-ratelimit-reset"]), UTC)
        except (KeyError, ValueError, OverflowError, OSError):
            return _SECONDARY_WAIT
        return max(0.0, (reset - now).total_seconds())
    return _SECONDARY_WAIT if _says_rate_limit(response) else None


class GitHubClient:
    """Opens issues and comments in one repository, and writes config files to it.

    Implements :class:`~integrations.tracker.IssueTracker`.

    Args:
        token: A token with issues (and, for :meth:`put_file`, contents) write access.
        repo: ``owner/name``.
        base_url: The API root (``https://api.github.com``; GHES: ``https://host/api/v3``).
        options: Shared client, timeout, retries, breaker and clocks.

    Raises:
        ConfigurationError: A missing token, a malformed repo or base URL.
    """

    name = "github"

    def __init__(
        self,
        token: str | Secret,
        repo: str,
        *,
        base_url: str = "https://api.github.com",
        options: ClientOptions | None = None,
    ) -> None:
        value = token.reveal() if isinstance(token, Secret) else token
        if not value:
            raise ConfigurationError("github needs a token")
        if not _REPO.match(repo):
            raise ConfigurationError(f"github repo must be owner/name but it is {repo!r}")
        self._repo = repo
        self._http = ApiTransport(
            "github",
            base_url,
            headers={
                "authorization": Secret(f"Bearer {value}"),
                "accept": "application/vnd.github+json",
                "x-github-api-version": GITHUB_API_VERSION,
            },
            secrets=(value,),
            error_reader=github_error,
            options=options,
            retryable=is_github_retryable,
            delay_hint=github_rate_limit_wait,
        )

    def __repr__(self) -> str:
        return f"GitHubClient(base_url={self._http.base_url!r}, repo={self._repo!r})"

    @property
    def breaker(self) -> CircuitBreaker:
        """The client's circuit breaker."""
        return self._http.breaker

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise IntegrationError(
                "github", "invalid_json", attempts=1, status=response.status_code
            ) from None

    def _issue(self, body: Any) -> IssueRef:
        try:
            return IssueRef(target="github", key=str(body["number"]), url=str(body["html_url"]))
        except (KeyError, TypeError):
            raise IntegrationError("github", "no issue number", attempts=1) from None

    async def create_issue(
        self, title: str, body: str, *, labels: tuple[str, ...] = ()
    ) -> IssueRef:
        """Open an issue (``POST /repos/{owner}/{repo}/issues``)."""
        payload: dict[str, Any] = {"title": one_line(title, _TITLE_MAX), "body": body}
        if labels:
            payload["labels"] = list(labels)
        response = await self._http.request("POST", f"/repos/{self._repo}/issues", json=payload)
        return self._issue(self._json(response))

    async def add_comment(self, number: str, body: str) -> str:
        """Comment on an issue (``POST .../issues/{number}/comments``); returns the comment id."""
        response = await self._http.request(
            "POST", f"/repos/{self._repo}/issues/{number}/comments", json={"body": body}
        )
        data = self._json(response)
        return str(data.get("id", "")) if isinstance(data, dict) else ""

    async def find_issue(self, label: str) -> IssueRef | None:
        """The oldest issue (open or closed) carrying ``label``."""
        response = await self._http.request(
            "GET",
            f"/repos/{self._repo}/issues",
            params={"labels": label, "state": "all", "direction": "asc", "per_page": "1"},
        )
        found = self._json(response)
        return self._issue(found[0]) if isinstance(found, list) and found else None

    async def open_issue(self, n: Notification) -> IssueRef:
        """Open an issue for ``n`` unless one carries its key's label already."""
        label = issue_label(n.key)
        existing = await self.find_issue(label)
        if existing is not None:
            return existing
        return await self.create_issue(n.title, build_markdown(n), labels=("llmopt", label))

    async def comment(self, issue_key: str, n: Notification) -> str:
        """Comment ``n`` (its title as a heading, then its markdown) on issue ``issue_key``."""
        return await self.add_comment(issue_key, f"### {n.title}\n\n{build_markdown(n)}")

    def _contents_url(self, path: str) -> str:
        return f"/repos/{self._repo}/contents/{quote(path.strip('/'), safe='/')}"

    async def _current(self, path: str, branch: str | None) -> dict[str, Any] | None:
        params = {"ref": branch} if branch else None
        url = self._contents_url(path)
        current = await self._http.request("GET", url, params=params, ok_statuses=(404,))
        if current.status_code != 200:
            return None
        data = self._json(current)
        return data if isinstance(data, dict) else None

    async def read_file(self, path: str, *, branch: str | None = None) -> bytes | None:
        """A file's content (``GET .../contents/{path}``), ``None`` when it does not exist."""
        data = await self._current(path, branch)
        if data is None or data.get("type", "file") != "file":
            return None
        try:
            return base64.b64decode(str(data.get("content") or ""))
        except ValueError:
            raise IntegrationError("github", "undecodable file content", attempts=1) from None

    async def put_file(
        self, path: str, content: bytes | str, message: str, *, branch: str | None = None
    ) -> FileCommit:
        """Create or update a file (``PUT .../contents/{path}``), reading its sha to update it.

        Args:
            path: The file's path in the repository.
            content: The new content (text is UTF-8 encoded).
            message: The commit message.
            branch: The branch (default: the repository's default branch).

        Returns:
            The written file.

        Raises:
            IntegrationError: GitHub refused (e.g. 409 when the branch moved, 422) or failed.
        """
        current = await self._current(path, branch)
        sha = current.get("sha") if current is not None else None
        raw = content.encode() if isinstance(content, str) else content
        payload: dict[str, Any] = {"message": message, "content": base64.b64encode(raw).decode()}
        if sha:
            payload["sha"] = sha
        if branch:
            payload["branch"] = branch
        response = await self._http.request("PUT", self._contents_url(path), json=payload)
        data = self._json(response)
        try:
            return FileCommit(
                path=str(data["content"]["path"]),
                sha=str(data["content"]["sha"]),
                commit=str(data["commit"]["sha"]),
                url=str(data["content"].get("html_url") or ""),
                created=response.status_code == 201,
            )
        except (KeyError, TypeError, AttributeError):
            raise IntegrationError("github", "unexpected contents answer", attempts=1) from None

    async def close(self) -> None:
        """Close the httpx client if the client opened it (idempotent)."""
        await self._http.close()
