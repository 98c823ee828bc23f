"""Where the simulated apps read their active config (CONTRACT.md §3).

- :class:`RestConfigSource`: ``GET /api/v1/config/{app}`` with ``x-api-key`` through the client
  SDK's config watcher (ETag, fail static), re-read at most every ``poll_interval`` wall seconds
  per app (what a real application does);
- :class:`ManagerConfigSource`: the config manager straight from the database (in-process runs
  and tests);
- :class:`StaticConfigSource`: fixed configs (unit tests).

``seed`` stores a first config for an app that has none, so the optimizer starts from the
scenario's default models.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

import httpx
import msgspec
from llmopt_client import AppConfig as SdkAppConfig
from llmopt_client import ConfigWatcher

from core.app_config import AppConfig, TaskConfig
from core.errors import NotFoundError
from rollout.config_manager import ConfigManager

__all__ = ["ConfigSource", "ManagerConfigSource", "RestConfigSource", "StaticConfigSource"]

_AUTHOR = "simulator"


class ConfigSource(Protocol):
    """Reads an app's active config (``None``: the app has none)."""

    def config(self, app: str) -> AppConfig | None:
        """The active config of ``app``."""
        ...

    def seed(self, app: str, tasks: Mapping[str, TaskConfig]) -> None:
        """Store ``tasks`` as the first config of ``app`` unless it has one."""
        ...


class StaticConfigSource:
    """Configs held in memory; ``seed`` fills in missing apps."""

    def __init__(self, configs: Mapping[str, AppConfig] | None = None) -> None:
        self.configs = dict(configs or {})

    def config(self, app: str) -> AppConfig | None:
        """The held config of ``app``."""
        return self.configs.get(app)

    def seed(self, app: str, tasks: Mapping[str, TaskConfig]) -> None:
        """Hold ``tasks`` as version 1 unless ``app`` has a config."""
        self.configs.setdefault(app, AppConfig(app=app, version=1, tasks=dict(tasks)))


class ManagerConfigSource:
    """The active config from the config manager (one database read per call)."""

    def __init__(self, manager: ConfigManager) -> None:
        self._manager = manager

    def config(self, app: str) -> AppConfig | None:
        """The active config of ``app``."""
        try:
            return self._manager.active(app).as_config()
        except NotFoundError:
            return None

    def seed(self, app: str, tasks: Mapping[str, TaskConfig]) -> None:
        """Store ``tasks`` unless ``app`` has a config."""
        if self.config(app) is None:
            self._manager.update(app, dict(tasks), author=_AUTHOR, reason="simulated fleet")


class RestConfigSource:
    """``GET /api/v1/config/{app}`` through the client SDK, polled at most every ``poll_interval``.

    Each app reads its config as an application does: with the SDK's
    :class:`llmopt_client.ConfigWatcher` (``If-None-Match``, 304 while unchanged, the last
    config kept when the API fails), polled here on the simulation's own schedule.
    """

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        poll_interval: float = 1.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._client = client or httpx.Client(base_url=api_url.rstrip("/"), timeout=10.0)
        self._headers = {"x-api-key": api_key}
        self._poll = poll_interval
        self._watchers: dict[str, ConfigWatcher] = {}
        self._polled: dict[str, float] = {}
        self._converted: dict[str, tuple[SdkAppConfig, AppConfig]] = {}

    @property
    def errors(self) -> int:
        """Failed polls of every app (the last config read stays in use)."""
        return sum(w.stats.failures for w in self._watchers.values())

    def config(self, app: str) -> AppConfig | None:
        """The active config of ``app`` (the last one read when the API fails)."""
        watcher = self._watchers.get(app)
        if watcher is None:
            watcher = self._watchers[app] = ConfigWatcher(app, self._client, self._headers)
        now = time.monotonic()
        if app not in self._polled or now - self._polled[app] >= self._poll:
            watcher.refresh()
            self._polled[app] = now
        found = watcher.config
        if found is None:
            return None
        held = self._converted.get(app)
        if held is None or held[0] is not found:  # the SDK's types → the optimizer's, validated
            held = self._converted[app] = (
                found,
                msgspec.convert(msgspec.to_builtins(found), AppConfig),
            )
        return held[1]

    def seed(self, app: str, tasks: Mapping[str, TaskConfig]) -> None:
        """``PUT /api/v1/config/{app}`` unless the app has a config."""
        self._polled.pop(app, None)
        if self.config(app) is not None:
            return
        body = {"tasks": msgspec.to_builtins(dict(tasks)), "reason": "simulated fleet"}
        self._client.put(
            f"/api/v1/config/{app}", json=body, headers=self._headers
        ).raise_for_status()
        self._polled.pop(app, None)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
