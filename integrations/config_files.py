"""Config as files: every new config version written to a Git repository (a GitOps trail).

With ``integrations.github.config_path`` set (and a GitHub token and repository), each
``config_changed`` outbox row becomes a commit of ``<path>/<app>.json`` on
``integrations.github.branch`` (empty: the default branch) through the contents API: the active
config exactly as applications read it (CONTRACT.md §3), pretty-printed with sorted keys so
that ``git log -p`` shows each change as a readable diff; the commit message names the version,
author and reason. Delivery is at least once and never moves a file backwards: a version older
than (or equal to) the one in the repository is skipped, so a late retry cannot overwrite a
newer config.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from integrations.errors import IntegrationError
from integrations.formats import one_line
from integrations.github import FileCommit, GitHubClient

__all__ = ["FILES_TARGET", "ConfigFiles"]

#: The delivery target name of config files (recorded in the outbox row's result).
FILES_TARGET = "github_files"
_APP = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def _version_in(content: bytes) -> int:
    try:
        found = json.loads(content).get("version")
    except (ValueError, AttributeError):
        return 0
    return found if isinstance(found, int) else 0


class ConfigFiles:
    """Writes each config version of an app to ``<folder>/<app>.json`` in one repository.

    Args:
        github: The GitHub client (token with contents write access).
        folder: Folder in the repository (``integrations.github.config_path``).
        branch: Branch to commit to; empty: the repository's default branch.
    """

    def __init__(self, github: GitHubClient, folder: str, branch: str = "") -> None:
        self._github = github
        self._folder = folder.strip("/")
        self._branch = branch or None

    def path_of(self, app: str) -> str:
        """The file of ``app``'s config."""
        if not _APP.match(app):
            raise IntegrationError(  # a status: permanent, the row is parked
                "github", f"app name {app!r} is not a safe file name", attempts=1, status=400
            )
        return f"{self._folder}/{app}.json" if self._folder else f"{app}.json"

    async def write(self, payload: Mapping[str, Any]) -> FileCommit | None:
        """Commit the config of a ``config_changed`` payload; ``None`` when already as new.

        Raises:
            IntegrationError: A malformed payload (permanent), or GitHub refused or failed.
        """
        config = payload.get("config")
        if not isinstance(config, Mapping) or not isinstance(config.get("version"), int):
            raise IntegrationError(
                "github", "config_changed row without a config", attempts=1, status=400
            )
        app, version = str(config.get("app", "")), int(config["version"])
        path = self.path_of(app)
        current = await self._github.read_file(path, branch=self._branch)
        if current is not None and _version_in(current) >= version:
            return None
        content = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        reason = one_line(str(payload.get("reason") or "config change"), 200)
        message = f"llmopt: {app} config v{version} by {payload.get('author') or '?'}: {reason}"
        return await self._github.put_file(path, content, message, branch=self._branch)
